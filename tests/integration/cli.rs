//! The `blossom` binary end to end: the README's main command on the bundled data in
//! every input and output format, SQL files, and the errors a user can make.

use std::process::{Command, Output};

use blossom_sql::sim::{FaultConfig, SimConfig};

use crate::common::simulator;

const MAIN_QUERY: &str = "SELECT id, sentiment(text) AS s, enhance(text) AS e FROM '{file}' WHERE lang = 'en' ORDER BY id";

/// `blossom` with the given arguments, run from the crate root, with no provider
/// settings inherited from the environment.
fn blossom(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_blossom"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args(args);
    for var in [
        "BLOSSOM_PROVIDER",
        "BLOSSOM_BASE_URL",
        "BLOSSOM_MODEL",
        "BLOSSOM_API_KEY",
        "POLLINATIONS_API_KEY",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("blossom runs")
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
        &[],
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
    let cases: &[(&[&str], &str)] = &[
        (
            &["-c", "SELECT * FROM 'data/missing.csv'"],
            "data/missing.csv",
        ),
        (&["-c", "SELECT nope FROM 'data/reviews.csv'"], "nope"),
        (&["-c", "SELECT sentiment('a', 'b')"], "sentiment(Utf8)"),
        (
            &["-c", "SET blossom.max_concurrency = -3"],
            "blossom.max_concurrency",
        ),
        (
            &["--max-concurrency", "0", "-c", "SELECT 1"],
            "--max-concurrency",
        ),
        (&["-f", "no/such/file.sql"], "no/such/file.sql"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["--simulate", "-q"];
        all.extend_from_slice(args);
        let out = blossom(&all, &[]);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
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
async fn the_key_never_shows_even_in_trace_logs() {
    let secret = "sk_cli_secret_do_not_print";
    let sim = simulator(SimConfig {
        faults: FaultConfig {
            server_error: 1.0,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
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
}
