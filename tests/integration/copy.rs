//! `COPY ... TO` a local path is all or nothing: a failing statement leaves no file, no
//! partial directory and no temporary file, and an existing target stays as it was; a
//! succeeding one writes the same files DataFusion would.

use std::path::Path;

use blossom_sql::sim::{FaultConfig, SimConfig};
use datafusion::prelude::SessionContext;

use crate::common::*;

/// A statement that writes 8,192 rows, then fails on row 9,000.
const FAILING: &str = "SELECT v AS id, 1 / (v - 9000) AS x FROM generate_series(1, 10000) AS g(v)";

/// Every entry under `dir`, as paths relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

async fn run(ctx: &SessionContext, sql: &str) -> datafusion::common::Result<()> {
    ctx.sql(sql).await?.collect().await.map(drop)
}

async fn count(ctx: &SessionContext, path: &Path) -> i64 {
    let sql = format!("SELECT count(*) FROM '{}'", path.display());
    column(ctx, &sql).await.unwrap()[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_leaves_nothing_behind() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    for target in [
        format!("TO '{d}/x.parquet'"),
        format!("TO '{d}/x.csv'"),
        format!("TO '{d}/sub/x.json'"),
        format!("TO '{d}/out/' STORED AS PARQUET"),
        format!("TO '{d}/parts' STORED AS CSV PARTITIONED BY (p)"),
    ] {
        let sql = format!("COPY (SELECT id % 3 AS p, x FROM ({FAILING})) {target}");
        let error = run(&ctx, &sql).await.expect_err("divide by zero");
        assert!(error.to_string().contains("Divide by zero"), "{error}");
        let left: Vec<String> = tree(dir.path())
            .into_iter()
            .filter(|p| p != "sub")
            .collect();
        assert_eq!(left, Vec::<String>::new(), "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_failing_on_a_row_keeps_the_existing_file() {
    let sim = faulty_simulator(FaultConfig {
        server_error: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_retries", "0")]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("scored.parquet");
    let sql = |select: &str| format!("COPY ({select}) TO '{}'", target.display());
    run(&ctx, &sql("SELECT v FROM generate_series(1, 5) AS g(v)"))
        .await
        .unwrap();
    let before = std::fs::read(&target).unwrap();
    let error = run(
        &ctx,
        &sql("SELECT sentiment('row ' || v) AS s FROM generate_series(1, 50) AS g(v)"),
    )
    .await
    .expect_err("every request fails");
    assert!(error.to_string().contains("sentiment()"), "{error}");
    assert_eq!(std::fs::read(&target).unwrap(), before, "left as it was");
    assert_eq!(tree(dir.path()), vec!["scored.parquet".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_copy_writes_what_datafusion_would() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let rows = "SELECT v % 3 AS p, v, sentiment('row ' || v || ' is great') AS s \
                FROM generate_series(1, 30) AS g(v)";
    for target in [
        format!("TO '{d}/x.parquet'"),
        format!("TO '{d}/new/x.csv'"),
        format!("TO '{d}/out/' STORED AS PARQUET"),
        format!("TO '{d}/parts' STORED AS CSV PARTITIONED BY (p)"),
        // Into an existing directory: its files stay, the new ones join them.
        format!("TO '{d}/parts' STORED AS CSV PARTITIONED BY (p)"),
    ] {
        let answer = column(&ctx, &format!("COPY ({rows}) {target}"))
            .await
            .unwrap();
        assert_eq!(answer, vec![Some("30".to_string())], "{target}");
    }
    assert_eq!(count(&ctx, &dir.path().join("x.parquet")).await, 30);
    assert_eq!(count(&ctx, &dir.path().join("new/x.csv")).await, 30);
    let out = format!("{d}/out/");
    assert_eq!(count(&ctx, Path::new(&out)).await, 30);
    let parts = tree(&dir.path().join("parts"));
    assert_eq!(
        parts.iter().filter(|p| p.ends_with(".csv")).count(),
        6,
        "{parts:?}"
    );
    assert!(parts.iter().any(|p| p.starts_with("p=0/")), "{parts:?}");
    // No temporary file or directory is left.
    assert!(
        tree(dir.path()).iter().all(|p| !p.contains(".partial-")),
        "{:?}",
        tree(dir.path())
    );
}
