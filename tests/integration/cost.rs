//! Cost in money against the simulator: `blossom_metrics()`'s `cost` is the reported
//! tokens at `blossom.price_input` / `price_output`, cached answers cost nothing, a
//! model without a price has an unknown (NULL) cost, `blossom_estimate()` prices the
//! same tokens, `blossom.max_cost` stops a query before it would go over, having sent
//! fewer requests than the query without it, and the CLI's summary line and `--report`
//! show the cost.

use blossom_sql::sim::SimConfig;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, UInt64Type};
use datafusion::prelude::SessionContext;

use crate::common::*;

const ROWS: usize = 120;
/// USD per million tokens: 2500 and 10000 nano-USD a token, so costs are exact.
const PRICE_INPUT: f64 = 2.5;
const PRICE_OUTPUT: f64 = 10.0;
const MAX_ANSWER_TOKENS: u64 = 8;
const SELECT: &str = "SELECT sentiment(text) FROM t";

/// The last query's `blossom_metrics()` row: requests, input and output tokens, cost.
async fn last_metrics(ctx: &SessionContext) -> (u64, u64, u64, Option<f64>) {
    let batches = ctx
        .sql(
            "SELECT requests, input_tokens, output_tokens, cost FROM blossom_metrics() \
             ORDER BY query_id DESC LIMIT 1",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let batch = &batches[0];
    let count = |i: usize| batch.column(i).as_primitive::<UInt64Type>().value(0);
    let cost = batch.column(3).as_primitive::<Float64Type>();
    (
        count(0),
        count(1),
        count(2),
        cost.is_valid(0).then(|| cost.value(0)),
    )
}

/// Tokens at the test's prices, in USD.
fn priced(input: u64, output: u64) -> f64 {
    (input as f64 * PRICE_INPUT + output as f64 * PRICE_OUTPUT) / 1e6
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
}

fn priced_session(sim: &blossom_sql::sim::Simulator, extra: &[(&str, &str)]) -> SessionContext {
    let max_answer = MAX_ANSWER_TOKENS.to_string();
    let mut options = vec![
        ("price_input", "2.5"),
        ("price_output", "10"),
        ("max_answer_tokens", max_answer.as_str()),
    ];
    options.extend_from_slice(extra);
    let ctx = session(sim, &options);
    register_texts(&ctx, &unique_texts(ROWS));
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_is_the_tokens_at_the_price_and_cached_answers_cost_nothing() {
    let sim = simulator(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = priced_session(&sim, &[("cache", dir.path().to_str().unwrap())]);

    let estimate = ctx
        .sql(&format!(
            "SELECT requests, input_tokens_estimate, cost FROM blossom_estimate('{SELECT}')"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let estimate = &estimate[0];
    let estimated_requests = estimate.column(0).as_primitive::<UInt64Type>().value(0);
    let estimated_input = estimate.column(1).as_primitive::<UInt64Type>().value(0);
    let estimated_cost = estimate.column(2).as_primitive::<Float64Type>().value(0);
    assert_eq!(sim.stats().requests, 0, "an estimate sends nothing");

    column(&ctx, SELECT).await.unwrap();
    let sent = sim.stats();
    let (requests, input, output, cost) = last_metrics(&ctx).await;
    assert_eq!(
        (requests, input, output),
        (sent.requests, sent.prompt_tokens, sent.completion_tokens)
    );
    assert!(input > 0 && output > 0);
    let cost = cost.expect("a priced model has a known cost");
    assert!(
        close(cost, priced(input, output)),
        "{cost} for {input} + {output} tokens"
    );

    // The estimate prices each request's prompt tokens as the simulator counts them
    // (characters / 4, rounded up per request, where `input_tokens_estimate` rounds
    // the total), and each answer at its longest.
    assert_eq!(estimated_requests, requests);
    assert!(estimated_input <= input && input <= estimated_input + requests);
    assert!(
        close(estimated_cost, priced(input, requests * MAX_ANSWER_TOKENS)),
        "{estimated_cost}"
    );
    assert!(estimated_cost >= cost, "the estimate is the worst case");

    // The same query again is answered by the response cache: no request, no cost.
    column(&ctx, SELECT).await.unwrap();
    assert_eq!(sim.stats().requests, sent.requests);
    assert_eq!(last_metrics(&ctx).await, (0, 0, 0, Some(0.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_cost_stops_a_query_before_it_would_go_over() {
    let sim = simulator(SimConfig::default()).await;
    let unlimited = priced_session(&sim, &[]);
    column(&unlimited, SELECT).await.unwrap();
    let full = sim.stats().requests;
    let (_, _, _, full_cost) = last_metrics(&unlimited).await;
    let full_cost = full_cost.unwrap();
    assert_eq!(full, ROWS as u64);

    // A budget of a quarter of what the query costs.
    let limit = full_cost / 4.0;
    let ctx = priced_session(&sim, &[("max_cost", &limit.to_string())]);
    let error = column(&ctx, SELECT).await.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "the query stopped: its next request would exceed blossom.max_cost = {limit}"
        )),
        "{error}"
    );
    let stopped = sim.stats().requests - full;
    assert!(
        stopped > 0 && stopped < full / 2,
        "{stopped} requests sent under a quarter of the cost of {full}"
    );
    let (requests, input, output, cost) = last_metrics(&ctx).await;
    assert_eq!(requests, stopped);
    let cost = cost.unwrap();
    assert!(close(cost, priced(input, output)));
    assert!(cost <= limit, "spent {cost} of {limit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_price_has_an_unknown_cost_and_cannot_be_budgeted() {
    let sim = simulator(SimConfig::default()).await;
    // `blossom-sim` is in no price table.
    let ctx = session(&sim, &[]);
    register_texts(&ctx, &unique_texts(10));
    column(&ctx, SELECT).await.unwrap();
    let (requests, _, _, cost) = last_metrics(&ctx).await;
    assert_eq!((requests, cost), (10, None), "unknown, not 0");

    let budgeted = session(&sim, &[("max_cost", "1")]);
    register_texts(&budgeted, &unique_texts(10));
    let error = column(&budgeted, SELECT).await.unwrap_err().to_string();
    assert!(error.contains("blossom.max_cost = 1 is set"), "{error}");
    assert!(error.contains("'blossom-sim'"), "{error}");
    assert!(error.contains("blossom.price_input"), "{error}");
    assert_eq!(sim.stats().requests, 10, "nothing is sent under the budget");
}

#[test]
fn the_cli_summary_and_report_show_the_cost() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let query = "SELECT count(s) AS n FROM (SELECT sentiment(text) AS s FROM 'data/reviews.csv')";
    let out = blossom_command(&[
        "--simulate",
        "--sim-latency-ms",
        "0",
        "--format",
        "csv",
        "--report",
        report.to_str().unwrap(),
        "-c",
        // Listed at 0.15 USD per million prompt tokens, 0.60 per million answer tokens.
        &format!("SET blossom.model = 'gpt-4o-mini'; {query}"),
        "-c",
        // The simulator's own model has no price.
        &format!("SET blossom.model = 'blossom-sim'; {query}"),
    ])
    .output()
    .expect("blossom runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let statements = json["statements"].as_array().unwrap();
    let (priced, unpriced) = (&statements[1], &statements[3]);
    let tokens = |s: &serde_json::Value, key: &str| s["ai"][key].as_u64().unwrap();
    let expected = (tokens(priced, "prompt_tokens") as f64 * 0.15
        + tokens(priced, "completion_tokens") as f64 * 0.60)
        / 1e6;
    let cost = priced["cost"].as_f64().expect("a listed model has a cost");
    assert!(cost > 0.0 && close(cost, expected), "{cost} vs {expected}");
    assert_eq!(statements[0]["cost"], 0.0, "a SET costs nothing");
    assert!(tokens(unpriced, "requests") > 0);
    assert!(unpriced["cost"].is_null(), "unknown, not 0: {unpriced}");
    assert!(json["cost"].is_null(), "the run's total is unknown too");

    let summaries: Vec<&str> = stderr.lines().filter(|l| l.contains(" rows · ")).collect();
    assert_eq!(summaries.len(), 2, "{stderr}");
    assert!(
        summaries[0].contains(&format!(" tokens · ${cost:.6} · ")),
        "{}",
        summaries[0]
    );
    assert!(
        summaries[1].contains(" tokens · cost unknown · "),
        "{}",
        summaries[1]
    );
}
