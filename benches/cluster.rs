//! The same job on one `blossom` process and on a coordinator with three local
//! `blossom worker` processes, against the simulator at 50 ms a request:
//! `SELECT id, sentiment(text) AS s FROM 'in.csv'` over a generated CSV of distinct texts
//! (nothing dedups), with `blossom.cache = 'off'`, `blossom.max_concurrency = 16` and
//! `blossom.pack_rows = 1` (one request a row: packed 32 to a request, 3,000 rows would
//! be about 94 requests, a 0.3 s bound, under the cost of starting the processes), the
//! result printed with `--format csv` to a file.
//!
//! For each run: the wall time of the single process or of the coordinator (process
//! start to exit; the workers are started and listening before the clock starts), the
//! requests the simulator saw, its peak of requests in flight, and the bound
//! `requests × 50 ms / 16` with the ratio to it. The two outputs must hold the same rows
//! (compared sorted) and the simulator's answer for every text.
//!
//! On 2 cores the ratio cluster / single measures what distribution costs, not a
//! speed-up. The coordinator's limiter holds `max_concurrency` for the whole cluster, so
//! the peak column should read 16 for both runs (more would be a broken cap); the last
//! column is the bound at the peak seen, `requests × 50 ms / peak`.
//!
//! ```text
//! cargo bench --profile dev --bench cluster               # 3,000 rows (about 20 s)
//! cargo bench --profile dev --bench cluster -- rows 600
//! cargo bench --profile dev --bench cluster -- pack 32    # packed requests instead
//! ```
//!
//! The `blossom` binary is copied into the run's temporary directory first: a target
//! directory shared with other checkouts may have its `target/debug/blossom` rebuilt
//! from another branch while the bench runs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use blossom_sql::sim::{SimConfig, Simulator, sentiment_label};

const LATENCY: Duration = Duration::from_millis(50);
const MAX_CONCURRENCY: usize = 16;
const WORKERS: usize = 3;
/// The cluster's shared secret, the same for every process of the bench.
const TOKEN: &str = "blossom-bench-cluster";
/// How long a worker may take to print its listening line.
const WORKER_START: Duration = Duration::from_secs(60);

/// The text of row `i`: distinct for every row, a third each positive, negative, neutral.
fn text(i: usize) -> String {
    let moods = ["great and fast", "arrived broken and bad", "a plain box"];
    format!("order {i} {}", moods[i % 3])
}

fn write_input(path: &Path, rows: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("input file"));
    writeln!(out, "id,text").expect("write");
    for i in 0..rows {
        writeln!(out, "{i},{}", text(i)).expect("write");
    }
    out.flush().expect("write");
}

/// The rows every run must print: the simulator's label for each text, sorted.
fn expected_rows(rows: usize) -> Vec<String> {
    let mut expected: Vec<String> = (0..rows)
        .map(|i| format!("{i},{}", sentiment_label(&text(i))))
        .collect();
    expected.sort();
    expected
}

/// A copy of the `blossom` binary in `dir`, checked to have the `worker` subcommand.
fn blossom_binary(dir: &Path) -> PathBuf {
    let built = Path::new(env!("CARGO_BIN_EXE_blossom"));
    let copy = dir.join("blossom");
    std::fs::copy(built, &copy).expect("copy the blossom binary");
    let help = Command::new(&copy)
        .args(["worker", "--help"])
        .output()
        .expect("blossom runs");
    assert!(
        help.status.success(),
        "{} has no `worker` subcommand: was it rebuilt from another branch sharing the \
         target directory? Run the bench again.\n{}",
        built.display(),
        String::from_utf8_lossy(&help.stderr)
    );
    copy
}

/// `blossom` with no provider settings or worker list inherited from the environment,
/// and the bench's cluster token.
fn blossom(binary: &Path, sim: &Simulator) -> Command {
    let mut command = Command::new(binary);
    for var in [
        "BLOSSOM_PROVIDER",
        "BLOSSOM_BASE_URL",
        "BLOSSOM_MODEL",
        "BLOSSOM_API_KEY",
        "POLLINATIONS_API_KEY",
        "BLOSSOM_WORKERS",
        "BLOSSOM_PACK_ROWS",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
        .env("BLOSSOM_CACHE", "off")
        .env("BLOSSOM_CLUSTER_TOKEN", TOKEN)
        .args(["--provider", "custom", "--base-url", &sim.base_url()])
        .args(["--model", "blossom-sim"]);
    command
}

/// Worker processes, killed (and reaped) when dropped, a panic included.
struct Workers {
    children: Vec<Child>,
    addrs: Vec<String>,
}

impl Workers {
    /// Starts `n` workers on free ports and waits for each one's listening line.
    fn start(binary: &Path, sim: &Simulator, n: usize) -> Workers {
        let mut workers = Workers {
            children: Vec::new(),
            addrs: Vec::new(),
        };
        for index in 0..n {
            let mut child = blossom(binary, sim)
                .args(["worker", "--listen", "127.0.0.1:0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a worker starts");
            let stderr = child.stderr.take().expect("piped stderr");
            workers.children.push(child);
            let (found, listening) = mpsc::channel();
            // Reads the listening line, then keeps draining stderr (so the worker never
            // blocks on a full pipe) and shows anything else it says.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    match line.strip_prefix("blossom worker: listening on ") {
                        Some(addr) => {
                            let _ = found.send(addr.trim().to_string());
                        }
                        None => eprintln!("worker {index}: {line}"),
                    }
                }
            });
            let addr = listening
                .recv_timeout(WORKER_START)
                .unwrap_or_else(|e| panic!("worker {index} did not say it listens: {e}"));
            workers.addrs.push(addr);
        }
        workers
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one run of the job did.
struct Run {
    wall: Duration,
    requests: u64,
    peak_in_flight: u64,
    /// The printed rows without the header, sorted.
    rows: Vec<String>,
}

/// Runs the job in one `blossom` process, as a coordinator of `workers` when given.
fn run(
    binary: &Path,
    sim: &Simulator,
    dir: &Path,
    workers: Option<&Workers>,
    pack_rows: usize,
) -> Run {
    let name = if workers.is_some() {
        "cluster"
    } else {
        "single"
    };
    let out_path = dir.join(format!("{name}.csv"));
    let out = std::fs::File::create(&out_path).expect("output file");
    let sql = format!(
        "SET blossom.cache = 'off'; SET blossom.max_concurrency = {MAX_CONCURRENCY}; \
         SET blossom.pack_rows = {pack_rows}; \
         SELECT id, sentiment(text) AS s FROM '{}'",
        dir.join("in.csv").display()
    );
    let mut command = blossom(binary, sim);
    if let Some(workers) = workers {
        command.args(["--workers", &workers.addrs.join(",")]);
    }
    command
        .args(["--quiet", "--format", "csv", "-c", &sql])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped());
    sim.reset_stats();
    let start = Instant::now();
    let output = command
        .spawn()
        .expect("blossom starts")
        .wait_with_output()
        .expect("blossom ends");
    let wall = start.elapsed();
    assert!(
        output.status.success(),
        "the {name} run failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stats = sim.stats();
    let printed = std::fs::read_to_string(&out_path).expect("output readable");
    let mut rows: Vec<String> = printed.lines().skip(1).map(str::to_string).collect();
    rows.sort();
    Run {
        wall,
        requests: stats.requests,
        peak_in_flight: stats.peak_in_flight,
        rows,
    }
}

/// `requests × latency / slots`.
fn bound(requests: u64, slots: u64) -> Duration {
    LATENCY.mul_f64(requests as f64 / slots.max(1) as f64)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|at| args.get(at + 1))
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("{name}: '{n}' is not a number"))
            })
            .unwrap_or(default)
    };
    let rows = arg("rows", 3_000);
    let pack_rows = arg("pack", 1);

    // The simulator runs on this runtime's threads; the processes are driven from the
    // main thread with blocking calls.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = runtime
        .block_on(Simulator::start(SimConfig {
            latency: LATENCY,
            ..SimConfig::default()
        }))
        .expect("simulator starts");

    let dir = tempfile::tempdir().expect("temp dir");
    write_input(&dir.path().join("in.csv"), rows);
    let binary = blossom_binary(dir.path());

    let single = run(&binary, &sim, dir.path(), None, pack_rows);
    let started = Instant::now();
    let workers = Workers::start(&binary, &sim, WORKERS);
    let workers_up = started.elapsed();
    let cluster = run(&binary, &sim, dir.path(), Some(&workers), pack_rows);
    drop(workers);

    println!(
        "## One process against a coordinator and {WORKERS} workers \
         ({rows} rows, pack_rows {pack_rows}, {} ms a request, max_concurrency {MAX_CONCURRENCY})\n",
        LATENCY.as_millis()
    );
    println!(
        "| run | rows | requests | peak in flight | wall (s) | bound /16 (s) | ratio | \
         bound /peak (s) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (label, run) in [("single", &single), ("cluster", &cluster)] {
        let at_16 = bound(run.requests, MAX_CONCURRENCY as u64);
        let at_peak = bound(run.requests, run.peak_in_flight);
        let wall = run.wall.as_secs_f64();
        println!(
            "| {label} | {} | {} | {} | {wall:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            run.rows.len(),
            run.requests,
            run.peak_in_flight,
            at_16.as_secs_f64(),
            wall / at_16.as_secs_f64(),
            at_peak.as_secs_f64(),
            wall / at_peak.as_secs_f64(),
        );
    }
    println!(
        "\nwall cluster / single: {:.2} (workers up in {:.2} s, not counted)",
        cluster.wall.as_secs_f64() / single.wall.as_secs_f64(),
        workers_up.as_secs_f64()
    );
    let expected = expected_rows(rows);
    let same = single.rows == cluster.rows;
    println!(
        "outputs: {} ({} and {} rows; single {} the simulator's answers)",
        if same { "the same rows" } else { "DIFFERENT" },
        single.rows.len(),
        cluster.rows.len(),
        if single.rows == expected {
            "matches"
        } else {
            "DOES NOT match"
        }
    );
    assert!(
        same,
        "the cluster printed other rows than the single process"
    );
    assert_eq!(
        single.rows, expected,
        "the rows are not the simulator's answers"
    );
}
