//! `ai_score` over a table, packed as by default: ranking with `ORDER BY ... DESC LIMIT`
//! and averages per group give what the rows' own scores give, also when some answers
//! are out of the range (asked again, more firmly) and packed answers misbehave.

use std::sync::Arc;

use blossom_sql::observe::session_stats;
use blossom_sql::sim::{FaultConfig, OUT_OF_RANGE_MARKER, score_value};
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::common::*;

/// 300 reviews `(id, grp, text)` with from 0 to 9 positive words and from 1 to 10
/// negative ones, so scores spread over the range; every 25th answers out of range at
/// first.
fn reviews() -> Vec<(i64, i64, String)> {
    (0..300)
        .map(|i| {
            let positive = " great".repeat(i % 10);
            let negative = " broken".repeat((i / 10) % 10 + 1);
            let marker = if i % 25 == 7 { OUT_OF_RANGE_MARKER } else { "" };
            let text = format!("review {i}:{positive}{negative} {marker}");
            (i as i64, (i % 3) as i64, text)
        })
        .collect()
}

fn register(ctx: &SessionContext, rows: &[(i64, i64, String)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("grp", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.2.as_str()),
            )),
        ],
    )
    .expect("batch");
    let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
    ctx.register_table("reviews", Arc::new(table))
        .expect("register");
}

/// A session packing as by default, on a simulator with `faults`.
async fn scored(faults: FaultConfig) -> (blossom_sql::sim::Simulator, SessionContext) {
    let sim = faulty_simulator(faults).await;
    let rows = blossom_sql::config::DEFAULT_PACK_ROWS.to_string();
    let ctx = session(
        &sim,
        &[("pack_rows", rows.as_str()), ("max_concurrency", "8")],
    );
    register(&ctx, &reviews());
    (sim, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_top_ten_by_score_are_the_rows_with_the_highest_own_scores() {
    for faults in [
        FaultConfig::default(),
        FaultConfig::default().with_pack_misbehaviour(0.05),
    ] {
        let (sim, ctx) = scored(faults).await;
        let top = column(
            &ctx,
            "SELECT id || ' ' || s FROM (SELECT id, ai_score(text, 'how positive is the review', 0, 100) AS s \
             FROM reviews) ORDER BY s DESC, id LIMIT 10",
        )
        .await
        .unwrap();
        let mut expected: Vec<(f64, i64)> = reviews()
            .iter()
            .map(|(id, _, text)| (score_value(text, 0.0, 100.0), *id))
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let expected: Vec<Option<String>> = expected[..10]
            .iter()
            .map(|(s, id)| Some(format!("{id} {s:?}")))
            .collect();
        assert_eq!(top, expected);
        // The scores spread: the top ten are not all the maximum.
        assert!(
            expected
                .iter()
                .any(|e| !e.as_deref().unwrap().ends_with(" 5.0"))
        );
        let stats = session_stats(&ctx).unwrap().snapshot();
        assert_eq!(stats.failed_rows, 0);
        assert!(
            sim.stats().requests < 100,
            "packed: {} requests for 300 rows",
            sim.stats().requests
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn averages_per_group_are_the_averages_of_the_own_scores() {
    let (_sim, ctx) = scored(FaultConfig::default().with_pack_misbehaviour(0.05)).await;
    let averages = column(
        &ctx,
        "SELECT grp || ' ' || round(avg(ai_score(text, 'how positive is the review', 0, 10)), 6) \
         FROM reviews GROUP BY grp ORDER BY grp",
    )
    .await
    .unwrap();
    let expected: Vec<Option<String>> = (0..3)
        .map(|grp| {
            let scores: Vec<f64> = reviews()
                .iter()
                .filter(|r| r.1 == grp)
                .map(|r| score_value(&r.2, 0.0, 10.0))
                .collect();
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            Some(format!("{grp} {}", (mean * 1e6).round() / 1e6))
        })
        .collect();
    assert_eq!(averages, expected);
}
