//! The `blossom` binary end to end: the README's main command on the bundled data in
//! every input and output format, SQL files, and the errors a user can make.

use std::process::Output;

use blossom_sql::sim::{FaultConfig, SimConfig};

use crate::common::{blossom_command, faulty_simulator, simulator};

const MAIN_QUERY: &str = "SELECT id, sentiment(text) AS s, enhance(text) AS e FROM '{file}' WHERE lang = 'en' ORDER BY id";

/// `blossom` with the given arguments, run from the crate root, with no provider
/// settings inherited from the environment.
fn blossom(args: &[&str], env: &[(&str, &str)]) -> Output {
    blossom_command(args)
        .envs(env.iter().copied())
        .output()
        .expect("blossom runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn main_query(file: &str) -> String {
    MAIN_QUERY.replace("{file}", file)
}

/// Rows of newline-delimited JSON output.
fn ndjson_rows(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn main_command_runs_on_the_bundled_csv_with_the_simulator() {
    let out = blossom(
        &[
            "--simulate",
            "--sim-latency-ms",
            "0",
            "--format",
            "csv",
            "-c",
            &main_query("data/reviews.csv"),
        ],
        // As the README runs it: packing at its default.
        &[("BLOSSOM_PACK_ROWS", "")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("simulator"),
        "answers are labelled simulated: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,s,e"));
    let rows: Vec<&str> = lines.collect();
    let count = blossom(
        &[
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS n FROM 'data/reviews.csv' WHERE lang = 'en'",
        ],
        &[],
    );
    let expected: usize = stdout(&count).lines().nth(1).unwrap().parse().unwrap();
    assert!(expected > 100);
    assert_eq!(rows.len(), expected);
    assert!(
        rows.iter()
            .filter(|r| r.contains("[simulated] Enhanced:"))
            .count()
            > 100
    );
}

#[test]
fn csv_json_and_parquet_sources_give_the_same_answers() {
    let outputs: Vec<Vec<serde_json::Value>> = [
        "data/reviews.csv",
        "data/reviews.json",
        "data/reviews.parquet",
    ]
    .iter()
    .map(|file| {
        let out = blossom(
            &[
                "--simulate",
                "--sim-latency-ms",
                "0",
                "--format",
                "ndjson",
                "-c",
                &main_query(file),
            ],
            &[],
        );
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        ndjson_rows(&out)
    })
    .collect();
    assert!(outputs[0].len() > 100);
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
    for row in &outputs[0] {
        match row.get("s").and_then(|s| s.as_str()) {
            Some(s) => assert!(["POSITIVE", "NEGATIVE", "NEUTRAL"].contains(&s), "{row}"),
            None => assert!(
                row.get("e").and_then(|e| e.as_str()).is_none(),
                "NULL text, NULL answers: {row}"
            ),
        }
    }
}

#[test]
fn json_table_and_file_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job.sql");
    std::fs::write(
        &script,
        "SET blossom.max_concurrency = 4;\n\
         SELECT value FROM information_schema.df_settings WHERE name = 'blossom.max_concurrency';\n\
         SELECT sentiment('I love it') AS s;\n",
    )
    .unwrap();
    let out = blossom(
        &[
            "--simulate",
            "--sim-latency-ms",
            "0",
            "--format",
            "json",
            "-f",
            script.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let docs: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        docs,
        vec![
            serde_json::json!([{"value": "4"}]),
            serde_json::json!([{"s": "POSITIVE"}])
        ]
    );

    let out = blossom(
        &[
            "--simulate",
            "-q",
            "-c",
            "SELECT sentiment('awful') AS s",
            "-c",
            "SELECT 1 AS one",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("| NEGATIVE |") && stdout(&out).contains("| 1   |"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).is_empty(),
        "-q prints no notices: {}",
        stderr(&out)
    );
}

#[test]
fn user_errors_exit_non_zero_with_a_clear_message() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-c", "SELECT * FROM 'data/missing.csv'"],
            1,
            "data/missing.csv",
        ),
        (&["-c", "SELECT nope FROM 'data/reviews.csv'"], 1, "nope"),
        (
            &["-c", "SELECT sentiment('a', 'b')"],
            1,
            "sentiment(): argument 2 must be the options",
        ),
        (
            &["-c", "SET blossom.max_concurrency = -3"],
            1,
            "blossom.max_concurrency",
        ),
        (&["-f", "no/such/file.sql"], 1, "no/such/file.sql"),
        (
            &["--max-concurrency", "0", "-c", "SELECT 1"],
            2,
            "--max-concurrency",
        ),
        (&["--format", "xml", "-c", "SELECT 1"], 2, "xml"),
        (&["--maxrows", "lots", "-c", "SELECT 1"], 2, "lots"),
    ];
    for (args, code, needle) in cases {
        let mut all = vec!["--simulate", "-q"];
        all.extend_from_slice(args);
        let out = blossom(&all, &[]);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn the_report_describes_the_run_and_failed_rows_can_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let out = blossom(
        &[
            "--simulate",
            "--sim-latency-ms",
            "0",
            "-q",
            "--format",
            "csv",
            "--report",
            report.to_str().unwrap(),
            "-c",
            "SELECT count(s) AS n FROM (SELECT sentiment(text) AS s FROM 'data/reviews.csv')",
            "-c",
            "SELECT 1 AS one",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["statements"].as_array().unwrap().len(), 2);
    let first = &json["statements"][0];
    assert_eq!(first["status"], "ok");
    assert_eq!(first["rows"], 1);
    assert_eq!(first["ai"]["rows"], 295);
    assert_eq!(first["ai"]["requests"], 285);
    assert_eq!(first["ai"]["dedup_hits"], 10);
    assert_eq!(first["ai"]["failed_rows"], 0);
    assert!(first["ai"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(first["elapsed_ms"].is_u64());
    assert_eq!(json["statements"][1]["ai"]["requests"], 0);
    assert_eq!(json["ai"]["requests"], 285);

    // A failed statement: exit code 1, and the report says why.
    let out = blossom(
        &[
            "--simulate",
            "-q",
            "--report",
            report.to_str().unwrap(),
            "-c",
            "SELECT nope",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["status"], "failed");
    assert_eq!(json["exit_code"], 1);
    assert!(json["error"].as_str().unwrap().contains("nope"));
    assert_eq!(json["statements"][0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_failed_rows_than_allowed_exits_3() {
    let sim = faulty_simulator(FaultConfig {
        server_error: 0.5,
        ..FaultConfig::default()
    })
    .await;
    let base = sim.base_url();
    let run = move |max: &str| {
        let base = base.clone();
        let max = max.to_string();
        move || {
            blossom(
                &[
                    "--base-url",
                    &base,
                    "--on-error",
                    "null",
                    "-q",
                    "--format",
                    "csv",
                    "--max-failed-rows",
                    &max,
                    "-c",
                    "SET blossom.max_retries = 0",
                    "-c",
                    "SELECT count(*) AS n, count(s) AS answered FROM (SELECT sentiment('row ' || v) AS s FROM generate_series(1, 100) AS g(v))",
                ],
                &[],
            )
        }
    };
    let out = tokio::task::spawn_blocking(run("1000")).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tokio::task::spawn_blocking(run("3")).await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than --max-failed-rows 3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreadable_csv_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,text\n1,fine\n2,x,y,z\n").unwrap();
    let sql = format!("SELECT sentiment(text) FROM '{}'", bad.display());
    let out = blossom(&["--simulate", "-q", "-c", &sql], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("Error: "), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad.csv") && stderr(&out).contains("line 3"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_shows_even_in_request_spans_and_trace_logs() {
    let secret = "sk_cli_secret_do_not_print";
    let sim = faulty_simulator(FaultConfig {
        server_error: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let base = sim.base_url();
    let out = tokio::task::spawn_blocking(move || {
        blossom(
            &["--base-url", &base, "-c", "SET blossom.max_retries = 1; SET blossom.retry_initial_backoff_ms = 1; SHOW ALL; SELECT sentiment('great')"],
            &[("BLOSSOM_API_KEY", secret), ("RUST_LOG", "trace")],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let everything = format!("{}{}", stdout(&out), stderr(&out));
    assert!(everything.contains("blossom.api_key"), "SHOW ALL ran");
    assert!(everything.contains("HTTP 500"), "{everything}");
    assert!(!everything.contains(secret), "the key leaked");
    assert_eq!(sim.stats().requests, 2);
    // One span per call and per attempt, with the outcome of each attempt.
    // Three statements were planned before it (SET, SET, SHOW ALL), so it is query 4.
    let call_span = r#"ai_call{query_id=4 function="sentiment"}"#;
    for attempt in 1..=2 {
        let span = format!(
            "{call_span}:request{{url={base}/chat/completions model=",
            base = sim.base_url()
        );
        let line = everything
            .lines()
            .find(|l| {
                l.contains(&span)
                    && l.contains(&format!("attempt={attempt}}}"))
                    && l.contains("failed")
            })
            .unwrap_or_else(|| panic!("no span of attempt {attempt} in {everything}"));
        assert!(line.contains("class=\"server_error\""), "{line}");
        assert!(
            !line.contains('\u{1b}'),
            "no colour codes in a log file: {line}"
        );
    }
}

#[test]
fn the_example_pipelines_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::os::unix::fs::symlink(root.join("data"), dir.path().join("data")).unwrap();
    for (example, output) in [
        ("etl", "out/reviews_enhanced.json"),
        ("parallel_batch", "out/reviews_large.csv"),
        ("multi_stage", "out/articles_pipeline.json"),
        ("monitored", "out/run.json"),
    ] {
        let sql = root.join(format!("examples/sql/{example}.sql"));
        let out = blossom_command(&["--simulate", "--sim-latency-ms", "0", "-q"])
            .current_dir(dir.path())
            .args(["--report", "out/run.json", "-f"])
            .arg(&sql)
            .output()
            .unwrap();
        assert!(out.status.success(), "{example}: {}", stderr(&out));
        assert!(dir.path().join(output).exists(), "{example} wrote {output}");
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/run.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["status"], "ok", "{example}");
        assert!(
            report["ai"]["requests"].as_u64().unwrap() > 0,
            "{example} asked a model"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_and_output_flags_take_effect() {
    let sim = simulator(SimConfig::default()).await;
    let base = sim.base_url();
    let out = tokio::task::spawn_blocking(move || {
        blossom(
            &[
                "--provider", "custom", "--base-url", &base, "--model", "my-model",
                "--max-concurrency", "3", "--requests-per-minute", "6000", "--on-error", "null",
                "--maxrows", "2", "-q",
                "-c", "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) AS settings FROM information_schema.df_settings WHERE name IN ('blossom.provider', 'blossom.base_url', 'blossom.model', 'blossom.max_concurrency', 'blossom.requests_per_minute', 'blossom.on_error')",
                "-c", "SELECT sentiment('row ' || v) AS s FROM generate_series(1, 5) AS g(v)",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for shown in [
        "blossom.base_url=http://127.0.0.1:",
        "blossom.max_concurrency=3 ",
        "blossom.model=my-model ",
        "blossom.on_error=null ",
        "blossom.provider=custom ",
        "blossom.requests_per_minute=6000",
    ] {
        assert!(text.contains(shown), "{shown} missing in:\n{text}");
    }
    assert!(
        text.contains("5 row(s) fetched. (First 2 displayed. Use --maxrows to adjust)"),
        "{text}"
    );
    assert_eq!(text.matches("| NEUTRAL |").count(), 2, "{text}");
    assert_eq!(sim.stats().requests, 5);
    assert!(stderr(&out).is_empty(), "-q: {}", stderr(&out));
}

#[test]
fn a_closed_stdout_is_a_normal_end() {
    use std::io::{BufRead, BufReader};

    for format in ["csv", "ndjson", "json"] {
        let mut child = blossom_command(&[
            "-q",
            "--format",
            format,
            "-c",
            "SELECT v, 'row ' || v AS t FROM generate_series(1, 3000000) AS g(v)",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("blossom starts");
        let mut first = String::new();
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        reader.read_line(&mut first).expect("a first line");
        assert!(!first.is_empty(), "{format}");
        // `| head -1`: the reader goes away with most rows unread.
        drop(reader);
        let out = child.wait_with_output().expect("blossom ends");
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{format}: no message");
    }
}

#[test]
fn a_bad_setting_in_the_environment_is_a_usage_error_named_once() {
    for (var, value, message) in [
        (
            "BLOSSOM_PACK_ROWS",
            "lots",
            "Error: the environment variable BLOSSOM_PACK_ROWS: invalid value 'lots' for \
             blossom.pack_rows: not a number",
        ),
        (
            "BLOSSOM_PROVIDER",
            "nope",
            "Error: the environment variable BLOSSOM_PROVIDER: invalid value 'nope' for \
             blossom.provider:",
        ),
    ] {
        let out = blossom(&["-c", "SELECT 1"], &[(var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}: {}", stderr(&out));
        let text = stderr(&out);
        assert_eq!(text.lines().count(), 1, "one message: {text}");
        assert!(text.starts_with(message), "{text}");
        assert!(!text.contains("Invalid or Unsupported"), "{text}");
    }
    let out = blossom(&["--max-concurrency", "0", "-c", "SELECT 1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .starts_with("Error: --max-concurrency: invalid value '0' for blossom.max_concurrency"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_report_is_refused_before_anything_is_paid_for() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_a_file = file.join("run.json");
    for report in [under_a_file.as_path(), dir.path()] {
        let out = blossom(
            &[
                "--base-url",
                &sim.base_url(),
                "--model",
                "x",
                "--report",
                report.to_str().unwrap(),
                "-c",
                "SELECT sentiment('great, fast and cheap') AS s",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("cannot write the report {}", report.display())),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "the query did not run");
    }
    assert_eq!(sim.stats().requests, 0, "nothing was paid for");
}
