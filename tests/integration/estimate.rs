//! `blossom_estimate()` against a warm response cache: cached prompts are counted as
//! cache hits and not as requests, the estimate matches what the query then sends,
//! nested calls become exact once their inner answers are cached, and `COPY` is
//! estimated without writing anything.

use blossom_sql::sim::SimConfig;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::prelude::SessionContext;

use crate::common::*;

/// One estimate row: function, rows, unique prompts, cache hits, requests, exact.
type Row = (String, u64, u64, u64, u64, bool);

async fn estimate(ctx: &SessionContext, sql: &str) -> Vec<Row> {
    let quoted = sql.replace('\'', "''");
    let batches = ctx
        .sql(&format!(
            "SELECT function, rows, unique_prompts, cache_hits, requests, exact \
             FROM blossom_estimate('{quoted}') ORDER BY function"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for batch in batches {
        let count = |i: usize| batch.column(i).as_primitive::<UInt64Type>().clone();
        let (functions, exact) = (
            batch.column(0).as_string::<i32>(),
            batch.column(5).as_boolean(),
        );
        let (r, u, c, q) = (count(1), count(2), count(3), count(4));
        for i in 0..batch.num_rows() {
            assert!(!exact.is_null(i));
            rows.push((
                functions.value(i).to_string(),
                r.value(i),
                u.value(i),
                c.value(i),
                q.value(i),
                exact.value(i),
            ));
        }
    }
    rows
}

fn row(function: &str, rows: u64, unique: u64, cached: u64, requests: u64, exact: bool) -> Row {
    (function.to_string(), rows, unique, cached, requests, exact)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_prompts_are_not_counted_as_requests() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = session(&sim, &[("cache", dir.path().to_str().unwrap())]);
    let mut texts = unique_texts(40);
    texts.extend(unique_texts(10)); // ten duplicates
    register_texts(&ctx, &texts);
    // Warm the cache with the first 15 texts.
    column(&ctx, "SELECT sentiment(text) FROM t LIMIT 15")
        .await
        .unwrap();
    assert_eq!(sim.stats().requests, 15);

    let all = "SELECT sentiment(text) FROM t";
    assert_eq!(
        estimate(&ctx, all).await,
        [row("sentiment", 50, 40, 15, 25, true)]
    );
    assert_eq!(sim.stats().requests, 15, "estimating sends nothing");

    column(&ctx, all).await.unwrap();
    assert_eq!(
        sim.stats().requests,
        40,
        "the query sent what the estimate said"
    );
    assert_eq!(
        estimate(&ctx, all).await,
        [row("sentiment", 50, 40, 40, 0, true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_calls_are_exact_once_inner_answers_are_cached() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = session(&sim, &[("cache", dir.path().to_str().unwrap())]);
    register_texts(&ctx, &unique_texts(6));
    let nested = "SELECT sentiment(enhance(text)) FROM t";
    assert_eq!(
        estimate(&ctx, nested).await,
        [
            row("enhance", 6, 6, 0, 6, true),
            row("sentiment", 0, 0, 0, 0, false)
        ]
    );
    column(&ctx, "SELECT enhance(text) FROM t").await.unwrap();
    assert_eq!(
        estimate(&ctx, nested).await,
        [
            row("enhance", 6, 6, 6, 0, true),
            row("sentiment", 6, 6, 0, 6, true)
        ]
    );
    let sent = sim.stats().requests;
    column(&ctx, nested).await.unwrap();
    assert_eq!(sim.stats().requests - sent, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_is_estimated_without_writing() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    register_texts(&ctx, &unique_texts(8));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.parquet");
    let copy = format!(
        "COPY (SELECT text, sentiment(text) AS s FROM t) TO '{}'",
        out.display()
    );
    assert_eq!(
        estimate(&ctx, &copy).await,
        [row("sentiment", 8, 8, 0, 8, true)]
    );
    assert!(!out.exists(), "an estimate writes nothing");
    assert_eq!(sim.stats().requests, 0);
}
