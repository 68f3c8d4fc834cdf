//! `blossom convert` end to end, through the real binary: every input and output format
//! pair on the bundled reviews, `--where`, Parquet types kept, atomic output on every
//! kind of failure (provider, bad row, too many failed rows, Ctrl-C), usage errors, the
//! run report, a directory input, and bounded memory on a million rows.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use blossom_sql::sim::{FaultConfig, SimConfig, Simulator};

use crate::common::{blossom_command, faulty_simulator, simulator};

/// The bundled reviews have 300 rows.
const REVIEWS: usize = 300;
/// The columns of the bundled reviews, in order.
const COLUMNS: &str = "id,text,lang,category,rating,created_at";

/// `blossom` run from the crate root, with no provider settings from the environment.
fn command(args: &[&str]) -> Command {
    blossom_command(args)
}

fn blossom(args: &[&str]) -> Output {
    command(args).output().expect("blossom runs")
}

/// `blossom --simulate convert ...` with an instant simulator.
fn convert(args: &[&str]) -> Output {
    let mut all = vec!["--simulate", "--sim-latency-ms", "0", "convert"];
    all.extend_from_slice(args);
    blossom(&all)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// The CSV lines `sql` prints (header first).
fn query(sql: &str) -> Vec<String> {
    let out = blossom(&["-q", "--format", "csv", "-c", sql]);
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The one row `sql` answers, split at commas.
fn one_row(sql: &str) -> Vec<String> {
    let lines = query(sql);
    assert_eq!(lines.len(), 2, "{sql}: {lines:?}");
    lines[1].split(',').map(str::to_string).collect()
}

/// The names in `dir` that are left-over temporary files.
fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".partial"))
        .collect()
}

/// The column names of a converted file, in the order the file holds them.
fn columns_in_order(path: &Path) -> String {
    if path.extension().is_some_and(|e| e == "json") {
        // DataFusion sorts inferred JSON columns by name: look at the first line.
        let content = std::fs::read_to_string(path).unwrap();
        let first = content.lines().next().unwrap_or_default();
        let expected = format!("{COLUMNS},sentiment");
        let mut names: Vec<&str> = expected
            .split(',')
            .filter(|name| first.contains(&format!("\"{name}\":")))
            .collect();
        names.sort_by_key(|name| first.find(&format!("\"{name}\":")));
        return names.join(",");
    }
    query(&format!("SELECT * FROM '{}' LIMIT 1", text(path)))[0].clone()
}

/// A Parquet file of `rows` rows (`id`, and `text` always 'same text') at `path`.
fn generate(path: &Path, rows: usize, extra: &str) {
    let sql = format!(
        "COPY (SELECT v AS id, 'same text' AS text{extra} FROM generate_series(1, {rows}) AS g(v)) \
         TO '{}'",
        text(path)
    );
    let out = blossom(&["-q", "-c", &sql]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn every_format_pair_converts_the_bundled_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let input_ids = query("SELECT id FROM 'data/reviews.parquet'");
    let mut sentiments = Vec::new();
    for input in ["csv", "json", "parquet"] {
        for output in ["parquet", "csv", "json"] {
            let out_path = dir.path().join(format!("from_{input}.{output}"));
            let out = convert(&[
                &format!("data/reviews.{input}"),
                text(&out_path),
                "--add",
                "sentiment(text) AS sentiment",
            ]);
            assert!(out.status.success(), "{input}->{output}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&format!(
                    "blossom: wrote {REVIEWS} rows to {}",
                    out_path.display()
                )),
                "{input}->{output}: {}",
                stderr(&out)
            );
            assert!(out_path.is_file(), "one file, not a directory");
            assert!(out.stdout.is_empty(), "COPY's count row is not printed");
            let file = text(&out_path);

            // The input's columns in the input's order, then the new one.
            assert_eq!(
                columns_in_order(&out_path),
                format!("{COLUMNS},sentiment"),
                "{input}->{output}"
            );

            let counts = one_row(&format!(
                "SELECT count(*), count(sentiment), \
                 count(CASE WHEN trim(text) <> '' THEN 1 END), \
                 count(CASE WHEN sentiment NOT IN ('POSITIVE', 'NEGATIVE', 'NEUTRAL') THEN 1 END) \
                 FROM '{file}'"
            ));
            assert_eq!(counts[0], REVIEWS.to_string(), "{input}->{output}");
            assert_eq!(counts[1], counts[2], "a sentiment for every non-blank text");
            assert!(counts[1].parse::<usize>().unwrap() > 250, "{counts:?}");
            assert_eq!(counts[3], "0", "only the three labels");

            // Row order is the input's.
            let rows = query(&format!("SELECT id FROM '{file}'"));
            assert_eq!(rows, input_ids, "{input}->{output}: row order");
            sentiments.push(query(&format!("SELECT sentiment FROM '{file}'")));
        }
    }
    for other in &sentiments[1..] {
        assert_eq!(other, &sentiments[0], "same answers whatever the formats");
    }
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());
}

#[test]
fn where_keeps_only_the_matching_rows_and_jsonl_names_work() {
    let dir = tempfile::tempdir().unwrap();
    let english = one_row("SELECT count(*) FROM 'data/reviews.csv' WHERE lang = 'en'")[0].clone();
    let jsonl = dir.path().join("en.jsonl");
    let out = convert(&[
        "data/reviews.csv",
        text(&jsonl),
        "--add",
        "sentiment(text) AS sentiment",
        "--add",
        "rating * 2 AS double_rating -- a trailing comment is fine",
        "--where",
        "lang = 'en'",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("wrote {english} rows to")),
        "{}",
        stderr(&out)
    );
    // .jsonl is newline-delimited JSON; convert it back to read it.
    let back = dir.path().join("en.parquet");
    let out = convert(&[text(&jsonl), text(&back)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = one_row(&format!(
        "SELECT count(*), count(CASE WHEN lang <> 'en' THEN 1 END), \
         count(CASE WHEN double_rating <> rating * 2 THEN 1 END), count(sentiment) FROM '{}'",
        text(&back)
    ));
    assert_eq!(counts[0], english);
    assert_eq!(counts[1], "0");
    assert_eq!(counts[2], "0");
    assert!(counts[3].parse::<usize>().unwrap() > 100);
}

#[test]
fn parquet_to_parquet_keeps_the_column_types() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("typed.parquet");
    let out = convert(&[
        "data/reviews.parquet",
        text(&out_path),
        "--add",
        "sentiment(text) AS sentiment",
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "-q: {}", stderr(&out));
    let types = "SELECT arrow_typeof(created_at), arrow_typeof(id), arrow_typeof(rating), \
                 arrow_typeof(text) FROM '{file}' LIMIT 1";
    let before = query(&types.replace("{file}", "data/reviews.parquet"));
    let after = query(&types.replace("{file}", text(&out_path)));
    assert_eq!(before[1], after[1]);
    assert!(after[1].starts_with("\"Timestamp("), "{after:?}");
    assert!(after[1].contains(",Int64,Int64,"), "{after:?}");
    let sentiment = one_row(&format!(
        "SELECT arrow_typeof(sentiment) FROM '{}' LIMIT 1",
        text(&out_path)
    ));
    assert!(sentiment[0].contains("Utf8"), "{sentiment:?}");
}

#[test]
fn formats_can_be_given_by_flag_and_unknown_ones_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("reviews.dat");
    let out = convert(&["data/reviews.csv", text(&dat), "--output-format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = std::fs::read_to_string(&dat).unwrap();
    assert_eq!(first.lines().next(), Some(COLUMNS), "CSV with a header");
    let back = dir.path().join("back.json");
    let out = convert(&[text(&dat), text(&back), "--input-format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("wrote {REVIEWS} rows")));

    let cases: &[(&[&str], i32, String)] = &[
        (&["data/reviews.csv", "out.txt"], 2, "out.txt".to_string()),
        (
            &[text(&dat), "out.csv"],
            2,
            format!("the input {}", dat.display()),
        ),
        (
            &["data/no-such-file.parquet", "out.csv"],
            1,
            "the input data/no-such-file.parquet does not exist".to_string(),
        ),
        (
            &[
                "data/reviews.csv",
                "out.csv",
                "--where",
                "true; DROP TABLE input",
            ],
            2,
            "--where".to_string(),
        ),
        (
            &[
                "data/reviews.csv",
                "out.csv",
                "--where",
                "no_such_column = 1",
            ],
            1,
            "no_such_column".to_string(),
        ),
    ];
    for (args, code, needle) in cases {
        let out = convert(args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle.as_str()),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("out.csv")
            .exists()
    );
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("out.txt")
            .exists()
    );
}

#[test]
fn a_directory_and_quoted_paths() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    for name in ["a.csv", "b.csv"] {
        std::fs::copy("data/reviews.csv", parts.join(name)).unwrap();
    }
    // A quote and a space in the output's directory, which does not exist yet.
    let out_path = dir.path().join("it's here").join("all.parquet");
    let out = convert(&[text(&parts), text(&out_path)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("wrote {} rows", 2 * REVIEWS)),
        "{}",
        stderr(&out)
    );
    assert!(out_path.is_file());

    std::fs::write(parts.join("c.json"), "{}\n").unwrap();
    let out = convert(&[text(&parts), text(&dir.path().join("mixed.csv"))]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--input-format"), "{}", stderr(&out));
}

#[test]
fn the_report_describes_the_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let out = convert(&[
        "data/reviews.parquet",
        text(&dir.path().join("out.csv")),
        "--add",
        "sentiment(text) AS sentiment",
        "--report",
        text(&report),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["exit_code"], 0);
    let statements = json["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    assert!(
        statements[0]["sql"].as_str().unwrap().starts_with("COPY"),
        "{json}"
    );
    assert!(json["ai"]["requests"].as_u64().unwrap() > 250, "{json}");
}

/// Runs `blossom convert` against `sim` on a blocking thread.
async fn convert_against(sim: &Simulator, args: Vec<String>) -> Output {
    let mut all = vec![
        "--base-url".to_string(),
        sim.base_url(),
        "--model".to_string(),
        "blossom-sim".to_string(),
        "convert".to_string(),
    ];
    all.extend(args);
    tokio::task::spawn_blocking(move || {
        blossom(&all.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_leaves_no_output_and_an_old_output_untouched() {
    // 402 stops the query at once, whatever --on-error says.
    let sim = faulty_simulator(FaultConfig {
        payment_required: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.parquet");
    let kept = dir.path().join("kept.csv");
    let old = b"id,sentiment\n1,an earlier run's output\n".to_vec();
    std::fs::write(&kept, &old).unwrap();
    let report = dir.path().join("run.json");
    for target in [&fresh, &kept] {
        let out = convert_against(
            &sim,
            vec![
                "data/reviews.parquet".into(),
                text(target).into(),
                "--add".into(),
                "sentiment(text) AS sentiment".into(),
                "--on-error".into(),
                "fail".into(),
                "--report".into(),
                text(&report).into(),
            ],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("nothing was written to {}", target.display())),
            "{}",
            stderr(&out)
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(json["status"], "failed");
    }
    assert!(!fresh.exists());
    assert_eq!(std::fs::read(&kept).unwrap(), old, "byte for byte");
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());

    // Failed rows as NULLs (answers that are no label), but more of them than allowed:
    // exit 3, nothing written.
    sim.set_config(SimConfig::default());
    let out = convert_against(
        &sim,
        vec![
            "data/reviews.parquet".into(),
            text(&kept).into(),
            "--add".into(),
            "categorize(text || ' [[confuse-always]]', 'good', 'bad') AS sentiment".into(),
            "--on-error".into(),
            "null".into(),
            "--max-failed-rows".into(),
            "0".into(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(std::fs::read(&kept).unwrap(), old, "byte for byte");
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());
}

#[test]
fn a_row_failing_after_megabytes_were_written_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.parquet");
    generate(&big, 1_000_000, "");
    let out_path = dir.path().join("out.csv");
    std::fs::write(&out_path, "keep me\n").unwrap();
    // Rows after 900,000 fail: by then about 20 MB of CSV are staged on disk.
    let mut child = command(&[
        "-q",
        "convert",
        text(&big),
        text(&out_path),
        "--add",
        "CASE WHEN id > 900000 THEN CAST(text AS BIGINT) END AS boom",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut saw_partial = false;
    while child.try_wait().unwrap().is_none() {
        saw_partial |= !partial_files(dir.path()).is_empty();
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!("a partial file was seen while converting: {saw_partial}");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Cannot cast"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "keep me\n");
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_leaves_no_output() {
    let sim = simulator(SimConfig {
        latency: Duration::from_secs(60),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.parquet");
    let child = command(&[
        "-q",
        "--base-url",
        &sim.base_url(),
        "--model",
        "blossom-sim",
        "convert",
        "data/reviews.parquet",
        text(&out_path),
        "--add",
        "sentiment(text) AS sentiment",
    ])
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Requests in flight: the conversion is running.
    let start = Instant::now();
    while sim.stats().requests == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no request came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(!out_path.exists());
    assert_eq!(partial_files(dir.path()), Vec::<String>::new());
}

/// The peak resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[cfg(target_os = "linux")]
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A million rows of about 1.5 KB each (1.5 GB of values, a 3.5 MB file) convert with
/// one request in far less memory than the rows take: COPY streams.
#[cfg(target_os = "linux")]
#[test]
fn a_million_rows_convert_in_bounded_memory() {
    const ROWS: usize = 1_000_000;
    const LIMIT_KIB: u64 = 1024 * 1024; // 1 GiB, below the 1.5 GB the rows hold
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.parquet");
    generate(&big, ROWS, ", repeat('payload ', 190) || v AS payload");
    let out_path = dir.path().join("out.parquet");
    let started = Instant::now();
    let mut child = command(&[
        "--simulate",
        "--sim-latency-ms",
        "0",
        "convert",
        text(&big),
        text(&out_path),
        "--add",
        "sentiment(text) AS s",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "convert of {ROWS} rows (~1.5 KB each, Parquet to Parquet): peak RSS {:.1} MiB, {:.1}s",
        peak as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("wrote {ROWS} rows")),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(" 1 requests"),
        "one distinct text: {}",
        stderr(&out)
    );
    assert!(peak > 0, "VmHWM was read");
    assert!(peak < LIMIT_KIB, "peak RSS {peak} KiB");
    let counts = one_row(&format!(
        "SELECT count(*), count(DISTINCT s), max(length(payload)) FROM '{}'",
        text(&out_path)
    ));
    assert_eq!(counts[0], ROWS.to_string());
    assert_eq!(counts[1], "1");
    assert!(counts[2].parse::<usize>().unwrap() > 1500, "{counts:?}");
}
