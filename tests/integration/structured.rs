//! Structured answers from a provider without JSON schemas: `extract()` asks for a JSON
//! schema, gets a 400 naming it, and from then on asks that provider in JSON object mode.

use blossom_sql::sim::SimConfig;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_refusing_json_schemas_is_asked_in_json_object_mode() {
    let sim = simulator(SimConfig {
        json_schema: false,
        ..SimConfig::default()
    })
    .await;
    let ctx = session(&sim, &[("max_concurrency", "1")]);
    let texts: Vec<Option<String>> = (1..=5)
        .map(|n| Some(format!("Order {n} cost {n}0 dollars")))
        .collect();
    register_texts(&ctx, &texts);
    let batches = ctx
        .sql("SELECT e.n FROM (SELECT extract(text, 'n BIGINT') AS e FROM t)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let values: Vec<Option<i64>> = batches
        .iter()
        .flat_map(|b| {
            let column = b.column(0).as_primitive::<Int64Type>().clone();
            (0..column.len())
                .map(move |i| column.is_valid(i).then(|| column.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(values, [Some(1), Some(2), Some(3), Some(4), Some(5)]);
    assert_eq!(
        sim.stats().requests,
        6,
        "one refusal, then every row in JSON object mode"
    );
}
