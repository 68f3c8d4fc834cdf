//! The AI operator's pipelining: small batches keep the provider busy, partitions share
//! one cap, and EXPLAIN / EXPLAIN ANALYZE show the operator and its metrics.

use std::sync::Arc;
use std::time::Duration;

use blossom_sql::sim::SimConfig;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::common::*;

/// Registers `t(text)` as `partitions` partitions of one-row batches.
fn register_one_row_batches(ctx: &SessionContext, texts: &[Option<String>], partitions: usize) {
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
    let mut parts = vec![Vec::new(); partitions];
    for (i, text) in texts.iter().enumerate() {
        let array = StringArray::from(vec![text.clone()]);
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)]).unwrap();
        parts[i % partitions].push(batch);
    }
    let table = MemTable::try_new(schema, parts).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_row_batches_do_not_serialize_the_calls() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_concurrency", "16")]);
    let texts = unique_texts(400);
    register_one_row_batches(&ctx, &texts, 1);

    let values = column(&ctx, "SELECT sentiment(text) FROM t").await.unwrap();

    assert_eq!(values, expected_sentiments(&texts), "order is kept");
    assert_eq!(sim.stats().peak_in_flight, 16, "{:?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_share_one_concurrency_cap() {
    let sim = simulator(SimConfig {
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_concurrency", "8")]);
    let texts = unique_texts(300);
    register_one_row_batches(&ctx, &texts, 4);

    let values = column(
        &ctx,
        "SELECT count(s) FROM (SELECT sentiment(text) AS s FROM t)",
    )
    .await
    .unwrap();

    assert_eq!(values, vec![Some("300".to_string())]);
    assert_eq!(sim.stats().peak_in_flight, 8, "{:?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_operator_and_analyze_its_metrics() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    let mut texts = unique_texts(40);
    texts.extend(unique_texts(10));
    texts.push(None);
    register_texts(&ctx, &texts);

    let explain = ctx
        .sql("EXPLAIN SELECT CASE WHEN text LIKE '%great%' THEN enhance(text) END FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let explain = pretty_format_batches(&explain).unwrap().to_string();
    assert!(
        explain.contains(
            "BlossomAiExec: calls=[enhance(text@0) AS __blossom_ai_1 WHEN text@0 LIKE %great%]"
        ),
        "{explain}"
    );

    let analyze = ctx
        .sql("EXPLAIN ANALYZE SELECT sentiment(text) FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let analyze = pretty_format_batches(&analyze).unwrap().to_string();
    for metric in [
        "ai_rows=50",
        "requests=40",
        "dedup_hits=10",
        "retries=0",
        "failed_rows=0",
        "provider_wait=",
    ] {
        assert!(analyze.contains(metric), "{metric} missing: {analyze}");
    }
}
