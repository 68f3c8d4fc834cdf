//! The API key never leaves the request's header: a provider that repeats every request
//! header in every kind of answer (200s, JSON errors, HTML error pages, 401s) gets it
//! back into no output, log line, error table, report, history file or cache file.

use std::path::Path;
use std::process::Output;

use blossom_sql::sim::{FaultConfig, SimConfig};
use rexpect::session::spawn_command;

use crate::common::*;

const SECRET: &str = "sk-live-never-show-me-0123456789";

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        blossom_command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_echoing_the_key_gets_it_into_no_output_log_report_or_cache() {
    let sim = simulator(SimConfig {
        api_key: Some(SECRET.to_string()),
        echo_headers: true,
        faults: FaultConfig {
            server_error: 0.3,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let report = dir.path().join("report.json");
    let sql = format!(
        "SET blossom.api_key = '{SECRET}'; SET blossom.on_error = 'null'; \
         SET blossom.max_retries = 0; \
         SELECT id, enhance(text) AS e FROM 'data/reviews.csv' ORDER BY id; \
         SELECT error_class, status, message FROM blossom_errors();"
    );
    let out = run(
        vec![
            "--base-url".into(),
            sim.base_url(),
            "--model".into(),
            "blossom-sim".into(),
            "--format".into(),
            "csv".into(),
            "--report".into(),
            report.display().to_string(),
            "-c".into(),
            sql,
        ],
        vec![
            ("RUST_LOG", "trace".to_string()),
            ("BLOSSOM_CACHE", cache.display().to_string()),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The answers and the errors did carry the echoed header, scrubbed.
    assert!(
        stdout.contains("authorization: Bearer <redacted>"),
        "{stdout}"
    );
    assert!(
        stdout.contains("server_error"),
        "failed rows are listed: {stdout}"
    );
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "logs ran"
    );
    assert!(!stdout.contains(SECRET), "stdout leaks the key");
    assert!(!stderr.contains(SECRET), "the trace log leaks the key");
    let report = std::fs::read(&report).unwrap();
    assert!(!contains(&report, SECRET), "the report leaks the key");
    assert!(contains(&report, "<redacted>"), "the SET is kept, redacted");
    let cached = files_under(&cache);
    assert!(!cached.is_empty(), "answers were cached");
    for (path, bytes) in cached {
        assert!(!contains(&bytes, SECRET), "{path} leaks the key");
    }

    // A 401 that repeats the key it refused.
    let mut config = sim.config();
    config.api_key = Some("another-key".to_string());
    sim.set_config(config);
    let out = run(
        vec![
            "--base-url".into(),
            sim.base_url(),
            "-c".into(),
            "SELECT enhance('hello')".into(),
        ],
        vec![
            ("BLOSSOM_API_KEY", SECRET.to_string()),
            ("RUST_LOG", "trace".to_string()),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(!stderr.contains(SECRET), "the 401 leaks the key: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_history_keeps_set_api_key_redacted() {
    let sim = simulator(SimConfig {
        echo_headers: true,
        ..SimConfig::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let base_url = sim.base_url();
    let home_path = home.path().to_path_buf();
    let screen = tokio::task::spawn_blocking(move || {
        let mut command = blossom_command(&["--base-url", &base_url, "--model", "blossom-sim"]);
        command
            .env("HOME", &home_path)
            .env("TERM", "xterm")
            .env("NO_COLOR", "1");
        let mut p = spawn_command(command, Some(60_000)).expect("blossom starts");
        p.exp_string("blossom> ").expect("the prompt");
        p.send_line(&format!("SET blossom.api_key = '{SECRET}';"))
            .unwrap();
        p.exp_string("blossom> ").expect("the prompt");
        p.send_line("SELECT enhance('hello there') AS e;").unwrap();
        let (answer, _) = p.exp_regex("Bearer <redacted>").expect("the answer");
        p.exp_string("blossom> ").expect("the prompt");
        p.send_line("\\q").unwrap();
        p.exp_eof().expect("the shell ends");
        answer
    })
    .await
    .unwrap();
    assert!(!screen.contains(SECRET), "the answer shows the key");
    let history = std::fs::read_to_string(home.path().join(".blossom_history")).unwrap();
    assert!(history.contains("blossom.api_key"), "{history}");
    assert!(
        !history.contains(SECRET),
        "the history leaks the key: {history}"
    );
    assert!(history.contains("<redacted>"), "{history}");
}
