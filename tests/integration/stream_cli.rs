//! The `blossom` binary over a streaming source read from its stdin, as a user runs it:
//! the Prometheus endpoint (`--metrics-addr`) read over TCP while the query runs, the
//! status line (`--progress`), and Ctrl-C (a real SIGINT): the exit code, the summary,
//! and the streaming counters in the `--report`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::common::blossom_command;

/// Longest a step may take before the test gives up (a hang, not a timing assert).
const PATIENCE: Duration = Duration::from_secs(60);

const SECRET: &str = "sk-stream-cli-secret-4821";

/// A running `blossom` with its stdin open and its output read line by line.
struct Blossom {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    out_lines: Vec<String>,
    err_lines: Vec<String>,
}

fn lines_of(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

impl Blossom {
    fn start(args: &[&str]) -> Self {
        let mut child = blossom_command(args)
            .env("BLOSSOM_API_KEY", SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("blossom starts");
        let stdin = child.stdin.take();
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdin,
            stdout,
            stderr,
            out_lines: Vec::new(),
            err_lines: Vec::new(),
        }
    }

    /// Waits for a line of stderr matching `want`, and returns it.
    fn stderr_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.err_lines.iter().find(|l| want(l)) {
            return line.clone();
        }
        let start = Instant::now();
        loop {
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    self.err_lines.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stderr ended first:\n{}", self.err_lines.join("\n"))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no such line on stderr:\n{}",
                self.err_lines.join("\n")
            );
        }
    }

    /// Waits until stdout has `n` lines.
    fn stdout_lines(&mut self, n: usize) -> &[String] {
        let start = Instant::now();
        while self.out_lines.len() < n {
            match self.stdout.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => self.out_lines.push(line),
                Err(RecvTimeoutError::Disconnected) => {
                    let stderr = self.drain_stderr();
                    panic!("stdout ended with {:?}; stderr:\n{stderr}", self.out_lines)
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if start.elapsed() > PATIENCE {
                let stderr = self.drain_stderr();
                panic!("stdout has {:?}; stderr:\n{stderr}", self.out_lines);
            }
        }
        &self.out_lines
    }

    fn drain_stderr(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.err_lines.push(line);
        }
        self.err_lines.join("\n")
    }

    fn write(&mut self, records: &[String]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        for record in records {
            writeln!(stdin, "{record}").expect("write a record");
        }
        stdin.flush().expect("flush");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// Waits for the process to exit (stdin still open: the signal must end it), and
    /// returns its exit code and everything it wrote to stderr.
    fn exit(mut self) -> (Option<i32>, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The readers end with the process.
                while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
                    self.err_lines.push(line);
                }
                return (status.code(), self.err_lines.join("\n"));
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("blossom did not exit:\n{}", self.drain_stderr());
            }
            self.drain_stderr();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `GET /metrics` over a plain TCP connection: the status line and the body.
fn get_metrics(addr: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to --metrics-addr");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

/// The value of sample `name` in Prometheus text.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `/metrics` until `done` holds of its body, and returns the body.
fn metrics_until(addr: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (status, body) = get_metrics(addr);
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        if done(&body) {
            return body;
        }
        assert!(start.elapsed() < PATIENCE, "never reached:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn records(ids: std::ops::Range<u32>) -> Vec<String> {
    ids.map(|i| format!(r#"{{"id": {i}, "text": "record {i} was great"}}"#))
        .collect()
}

fn streaming_sql(setting: &str) -> String {
    format!(
        "{setting} CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR) \
         STORED AS NDJSON LOCATION '/dev/stdin'; \
         SELECT id, sentiment(text) AS s FROM events"
    )
}

/// The address in `blossom: metrics at http://ADDR/metrics`.
fn metrics_addr(blossom: &mut Blossom) -> String {
    let line = blossom.stderr_line(|l| l.starts_with("blossom: metrics at http://"));
    line.trim_start_matches("blossom: metrics at http://")
        .trim_end_matches("/metrics")
        .to_string()
}

fn report(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("the report was written");
    serde_json::from_str(&text).expect("the report is JSON")
}

#[test]
fn metrics_count_the_records_and_ctrl_c_abandons_with_summary_and_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("run.json");
    let sql = streaming_sql("SET blossom.on_interrupt = 'abandon';");
    let mut blossom = Blossom::start(&[
        "--simulate",
        "--sim-latency-ms",
        "5",
        "--progress",
        "--format",
        "ndjson",
        "--metrics-addr",
        "127.0.0.1:0",
        "--report",
        report_path.to_str().expect("utf-8"),
        "-c",
        &sql,
    ]);
    let addr = metrics_addr(&mut blossom);
    blossom.write(&records(0..3));
    let rows = blossom.stdout_lines(3).to_vec();
    assert!(rows[0].contains(r#""id":0"#), "{rows:?}");
    let body = metrics_until(&addr, |b| sample(b, "blossom_rows_total") == Some(3.0));
    assert_eq!(
        sample(&body, "blossom_records_in_total"),
        Some(3.0),
        "{body}"
    );
    assert_eq!(sample(&body, "blossom_requests_total"), Some(3.0), "{body}");
    assert_eq!(
        sample(&body, "blossom_malformed_total"),
        Some(0.0),
        "{body}"
    );
    assert!(body.contains("# TYPE blossom_records_in counter"), "{body}");
    assert!(body.contains("# HELP blossom_uptime_seconds "), "{body}");
    assert!(
        sample(&body, "blossom_latency_p99_seconds").is_some_and(|s| s > 0.0),
        "{body}"
    );
    // Two more, and a line that is no record.
    blossom.write(&records(3..5));
    blossom.write(&["not json".to_string()]);
    blossom.stdout_lines(5);
    let body = metrics_until(&addr, |b| {
        sample(b, "blossom_malformed_total") == Some(1.0)
            && sample(b, "blossom_records_in_total") == Some(5.0)
    });
    assert!(!body.contains(SECRET), "{body}");
    let status = blossom.stderr_line(|l| l.contains(" rows/s · "));
    assert!(status.contains(" in flight · p50 "), "{status}");

    blossom.signal("-INT");
    let (code, stderr) = blossom.exit();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("the calls in flight are abandoned"),
        "{stderr}"
    );
    assert!(
        stderr.contains("blossom: stream: 5 records in · 0 delivered · 1 malformed"),
        "{stderr}"
    );
    assert!(stderr.contains("Error: interrupted"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");

    let report = report(&report_path);
    assert_eq!(report["status"], "interrupted", "{report}");
    assert_eq!(report["exit_code"], 130, "{report}");
    assert_eq!(report["stream"]["records_in"], 5, "{report}");
    assert_eq!(report["stream"]["malformed"], 1, "{report}");
    assert_eq!(report["stream"]["delivered"], 0, "{report}");
    assert!(report["stream"]["uptime_ms"].as_u64().is_some(), "{report}");
    let statements = report["statements"].as_array().expect("statements");
    assert_eq!(
        statements.last().expect("the SELECT")["status"],
        "interrupted"
    );
    assert!(!report.to_string().contains(SECRET));
}

#[test]
fn a_second_ctrl_c_abandons_the_calls_the_first_let_finish() {
    // Answers take ten minutes: the call in flight is still there after the first
    // Ctrl-C, whether or not the source has ended its stream by then.
    let mut blossom = Blossom::start(&[
        "--simulate",
        "--sim-latency-ms",
        "600000",
        "--format",
        "ndjson",
        "--metrics-addr",
        "127.0.0.1:0",
        "-c",
        &streaming_sql(""),
    ]);
    let addr = metrics_addr(&mut blossom);
    blossom.write(&records(0..1));
    metrics_until(&addr, |b| sample(b, "blossom_in_flight") == Some(1.0));
    blossom.signal("-INT");
    blossom.stderr_line(|l| l.contains("finishing the calls in flight"));
    blossom.signal("-INT");
    let (code, stderr) = blossom.exit();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted again: the calls in flight are abandoned"),
        "{stderr}"
    );
    assert!(stderr.contains("blossom: stream: 1 records in"), "{stderr}");
}

#[test]
fn ctrl_c_stops_reading_and_finishes_the_calls_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("run.json");
    let mut blossom = Blossom::start(&[
        "--simulate",
        "--sim-latency-ms",
        "300",
        "--format",
        "ndjson",
        "--report",
        report_path.to_str().expect("utf-8"),
        "-c",
        &streaming_sql(""),
    ]);
    blossom.write(&records(0..2));
    blossom.stdout_lines(1);
    blossom.signal("-INT");
    let (code, stderr) = blossom.exit();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("finishing the calls in flight"), "{stderr}");
    assert!(!stderr.contains("abandoned"), "{stderr}");
    let report = report(&report_path);
    let statements = report["statements"].as_array().expect("statements");
    let select = statements.last().expect("the SELECT");
    // Every record read was answered and printed.
    assert_eq!(select["rows"], report["stream"]["records_in"], "{report}");
    assert_eq!(select["status"], "interrupted", "{report}");
}

#[test]
fn a_bad_metrics_address_is_a_usage_error_naming_the_flag() {
    let out = blossom_command(&["--metrics-addr", "localhost", "-c", "SELECT 1"])
        .output()
        .expect("blossom runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--metrics-addr: 'localhost' is not an address and port"),
        "{stderr}"
    );
}

#[test]
fn sigterm_ends_a_streaming_query_with_143_and_its_summary() {
    let mut blossom = Blossom::start(&[
        "--simulate",
        "--sim-latency-ms",
        "5",
        "--format",
        "ndjson",
        "-c",
        &streaming_sql("SET blossom.on_interrupt = 'abandon';"),
    ]);
    blossom.write(&records(0..2));
    blossom.stdout_lines(2);
    blossom.signal("-TERM");
    let (code, stderr) = blossom.exit();
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("blossom: terminated: the sources stopped reading"),
        "{stderr}"
    );
    assert!(stderr.contains("blossom: stream: 2 records in"), "{stderr}");
    assert!(stderr.contains("Error: terminated"), "{stderr}");
}
