//! DataFusion's own sqllogictest files, a curated set, run against a blossom session and
//! against a plain DataFusion `SessionContext` configured as upstream's runner does
//! (4 target partitions), with upstream's result normalization (`normalize.rs`,
//! `conversion.rs` and `output.rs`, vendored from the `datafusion-sqllogictest` crate).
//!
//! A record that fails on blossom but passes on plain DataFusion is a difference: it
//! must be listed, with its reason, in `tests/upstream/expected_differences.txt`, or the
//! test fails; so does a listed difference that no longer happens. Records that fail on
//! both engines (data or setup of upstream's repository that is not copied here) are
//! counted and shown, not failures of blossom.
//!
//! The files live under `tests/upstream/`, laid out as in upstream's repository, so that
//! their relative paths (`../../testing/data/...`) resolve: the test runs in
//! `tests/upstream/datafusion/sqllogictest`. `cargo test --test conformance [-- FILTER]`
//! runs the files whose path contains FILTER.

mod conversion;
mod normalize;
mod output;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use blossom_sql::BlossomSessionBuilder;
use datafusion::arrow::error::ArrowError;
use datafusion::common::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::common::collect;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SessionConfig, SessionContext};
use output::{DFColumnType, DFOutput};
use sqllogictest::{Normalizer, Record};

/// The curated files (a directory: every `.slt` file in it), relative to `test_files`.
const FILES: &[&str] = &[
    "select.slt",
    "aggregate.slt",
    "joins.slt",
    "window.slt",
    "subquery.slt",
    "functions.slt",
    "expr.slt",
    "case.slt",
    "cte.slt",
    "order.slt",
    "limit.slt",
    "union.slt",
    "group_by.slt",
    "struct.slt",
    "math.slt",
    "predicates.slt",
    "scalar.slt",
    "string",
    "datetime",
    "array",
    // Where blossom differs on purpose (expected_differences.txt says how).
    "information_schema.slt",
    "explain.slt",
];

/// An error as upstream's runner shows it (error records match on this text).
#[derive(Debug)]
pub enum DFSqlLogicTestError {
    DataFusion(DataFusionError),
    Arrow(ArrowError),
}

impl fmt::Display for DFSqlLogicTestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataFusion(e) => write!(f, "DataFusion error: {}", e.strip_backtrace()),
            Self::Arrow(e) => write!(f, "Arrow error: {e}"),
        }
    }
}

impl std::error::Error for DFSqlLogicTestError {}

impl From<DataFusionError> for DFSqlLogicTestError {
    fn from(e: DataFusionError) -> Self {
        Self::DataFusion(e)
    }
}

impl From<ArrowError> for DFSqlLogicTestError {
    fn from(e: ArrowError) -> Self {
        Self::Arrow(e)
    }
}

pub type Result<T, E = DFSqlLogicTestError> = std::result::Result<T, E>;

/// One session under test.
struct Engine {
    ctx: SessionContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for Engine {
    type Error = DFSqlLogicTestError;
    type ColumnType = DFColumnType;

    /// As upstream's `run_query`.
    async fn run(&mut self, sql: &str) -> Result<DFOutput> {
        let df = self.ctx.sql(sql).await?;
        let task_ctx = std::sync::Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        let schema = plan.schema();
        let stream = execute_stream(plan, task_ctx)?;
        let types = normalize::convert_schema_to_types(stream.schema().fields());
        let results = collect(stream).await?;
        let rows = normalize::convert_batches(&schema, results, false)?;
        if rows.is_empty() && types.is_empty() {
            Ok(DFOutput::StatementComplete(0))
        } else {
            Ok(DFOutput::Rows { types, rows })
        }
    }

    fn engine_name(&self) -> &str {
        "DataFusion"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    async fn shutdown(&mut self) {}
}

/// Upstream's `value_normalizer`.
#[expect(
    clippy::ptr_arg,
    reason = "sqllogictest's Normalizer type takes &String"
)]
fn value_normalizer(s: &String) -> String {
    s.trim_end().to_string()
}

/// Upstream's `df_value_validator` (`<slt:ignore>` marks a part of the output not compared).
fn df_value_validator(normalizer: Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    const IGNORE_MARKER: &str = "<slt:ignore>";
    let normalized_expected: Vec<String> = expected.iter().map(normalizer).collect();
    let normalized_actual: Vec<String> = actual
        .iter()
        .map(|strs| strs.join(" ").trim_end().to_string())
        .collect();
    if expected.iter().any(|line| line.contains(IGNORE_MARKER)) {
        let expected_snapshot = normalized_expected.join("\n");
        let actual_snapshot = normalized_actual.join("\n");
        let mut pos = 0;
        for (i, frag) in expected_snapshot.split(IGNORE_MARKER).enumerate() {
            if frag.is_empty() {
                continue;
            }
            match actual_snapshot[pos..].find(frag) {
                Some(idx) if i == 0 && idx != 0 => return false,
                Some(idx) => pos += idx + frag.len(),
                None => return false,
            }
        }
        return true;
    }
    normalized_actual == normalized_expected
}

/// The configuration upstream's runner gives every file's session.
fn upstream_config() -> SessionConfig {
    SessionConfig::new().with_target_partitions(4)
}

fn plain_session() -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(upstream_config())
        .with_default_features()
        .build();
    SessionContext::new_with_state(state)
}

fn blossom_session() -> SessionContext {
    BlossomSessionBuilder::new()
        .with_session_config(upstream_config())
        .build()
        .unwrap_or_else(|e| panic!("cannot build a blossom session: {e}"))
}

/// What running one file on one engine gave: the records run, and the failing ones by
/// location (`file:line`, with the including file for an included part).
struct FileRun {
    records: usize,
    failures: BTreeMap<String, String>,
}

async fn run_file(path: &Path, ctx: SessionContext) -> FileRun {
    let records = sqllogictest::parse_file::<DFColumnType>(path)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    let mut runner = sqllogictest::Runner::new(move || {
        let ctx = ctx.clone();
        async move { Ok::<_, DFSqlLogicTestError>(Engine { ctx }) }
    });
    runner.add_label("Datafusion");
    runner.with_column_validator(sqllogictest::strict_column_validator);
    runner.with_normalizer(value_normalizer);
    runner.with_validator(df_value_validator);
    let mut run = FileRun {
        records: 0,
        failures: BTreeMap::new(),
    };
    for record in records {
        match record {
            Record::Halt { .. } => break,
            Record::Statement { .. } | Record::Query { .. } => run.records += 1,
            _ => {}
        }
        if let Err(e) = runner.run_async(record).await {
            let location = relative(&e.location().to_string()).replace('\n', " ");
            run.failures.insert(location, e.to_string());
        }
    }
    run
}

/// A location with the test directory's absolute prefix left out.
fn relative(location: &str) -> String {
    let root = upstream_dir().join("datafusion/sqllogictest/");
    location.replace(root.to_string_lossy().as_ref(), "")
}

fn upstream_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream")
}

/// The curated files, sorted, as paths relative to the runner's directory.
fn curated_files(filter: Option<&str>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in FILES {
        let path = Path::new("test_files").join(entry);
        if path.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "slt"))
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(path);
        }
    }
    files.retain(|p| filter.is_none_or(|f| p.to_string_lossy().contains(f)));
    files
}

/// `location reason` lines of `expected_differences.txt`.
fn expected_differences() -> BTreeMap<String, String> {
    let path = upstream_dir().join("expected_differences.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(' ') {
            Some((location, reason)) => (location.to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// Upstream's `setup_scratch_dir`: an empty `test_files/scratch/<file stem>`.
fn setup_scratch_dir(file: &Path) {
    let stem = file.file_stem().unwrap_or_default();
    let path = Path::new("test_files").join("scratch").join(stem);
    if path.exists() {
        let _ = std::fs::remove_dir_all(&path);
    }
    std::fs::create_dir_all(&path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
}

#[tokio::main]
async fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runner_dir = upstream_dir().join("datafusion/sqllogictest");
    std::env::set_current_dir(&runner_dir)
        .unwrap_or_else(|e| panic!("cannot enter {}: {e}", runner_dir.display()));
    let files = curated_files(filter.as_deref());
    let expected = expected_differences();
    let started = Instant::now();
    let (mut records, mut both_fail, mut seen_expected) = (0, 0, 0);
    let mut unexpected = Vec::new();
    let mut observed = BTreeSet::new();
    let mut environment: BTreeMap<String, usize> = BTreeMap::new();
    let mut files_failed = 0;
    for file in &files {
        setup_scratch_dir(file);
        let plain = run_file(file, plain_session()).await;
        setup_scratch_dir(file);
        let blossom = run_file(file, blossom_session()).await;
        records += blossom.records;
        let mut file_unexpected = 0;
        for (location, message) in &blossom.failures {
            if plain.failures.contains_key(location) {
                both_fail += 1;
                *environment.entry(file.display().to_string()).or_insert(0) += 1;
                continue;
            }
            observed.insert(location.clone());
            if expected.contains_key(location) {
                seen_expected += 1;
            } else {
                file_unexpected += 1;
                unexpected.push(format!("{location}\n{message}"));
            }
        }
        // A record that fails on plain DataFusion only is a difference too.
        for (location, message) in &plain.failures {
            if !blossom.failures.contains_key(location) {
                file_unexpected += 1;
                unexpected.push(format!(
                    "{location} passes on blossom but fails on plain DataFusion\n{message}"
                ));
            }
        }
        files_failed += usize::from(file_unexpected > 0);
        println!(
            "{} ... {} records, {} fail on both engines, {} differ{}",
            file.display(),
            blossom.records,
            blossom
                .failures
                .keys()
                .filter(|l| plain.failures.contains_key(*l))
                .count(),
            blossom
                .failures
                .keys()
                .filter(|l| !plain.failures.contains_key(*l))
                .count(),
            if file_unexpected > 0 {
                " (UNEXPECTED)"
            } else {
                ""
            }
        );
    }
    let run_files: BTreeSet<String> = files.iter().map(|f| f.display().to_string()).collect();
    let stale: Vec<&String> = expected
        .keys()
        .filter(|l| {
            let file = l.split(':').next().unwrap_or_default();
            run_files.contains(file) && !observed.contains(*l)
        })
        .collect();
    for failure in &unexpected {
        println!("\nUNEXPECTED: {failure}");
    }
    for location in &stale {
        println!("\nSTALE: {location} is listed as an expected difference but does not differ");
    }
    println!(
        "\n{} files, {records} records in {:.0?}: {} expected differences, {both_fail} fail \
         on plain DataFusion too (by file: {environment:?}), {} unexpected, {} stale",
        files.len(),
        started.elapsed(),
        seen_expected,
        unexpected.len(),
        stale.len()
    );
    let failed = files_failed + usize::from(!stale.is_empty());
    println!("{} passed, {failed} failed", files.len() - files_failed);
    if !unexpected.is_empty() || !stale.is_empty() || files.is_empty() {
        std::process::exit(1);
    }
}
