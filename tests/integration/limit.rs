//! `LIMIT` over an AI condition asks in growing waves and stops once the limit is
//! filled: the simulator counts the rows asked, for selectivities 0.9, 0.5 and 0.05, and
//! through the probe side of a join; `ORDER BY` before `LIMIT` asks every row.

use std::sync::Arc;

use blossom_sql::sim::SimConfig;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::common::*;

const ROWS: usize = 2_000;
const PACK_ROWS: usize = 16;
const CONDITION: &str = "mentions a refund";

/// `ROWS` rows `(id, lang, text)`, spread evenly, a fraction `selectivity` of them
/// asking for a refund (which is what the simulator's filter accepts).
fn register(ctx: &SessionContext, selectivity: f64) -> Vec<bool> {
    let meets: Vec<bool> = (0..ROWS)
        .map(|i| ((i * 7_919) % 1_000) as f64 / 1_000.0 < selectivity)
        .collect();
    let texts: Vec<String> = meets
        .iter()
        .enumerate()
        .map(|(i, meets)| match meets {
            true => format!("order {i}: I want a refund now"),
            false => format!("order {i}: the parcel came on time"),
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..ROWS as i64)),
            Arc::new(StringArray::from_iter_values(
                (0..ROWS).map(|i| if i % 2 == 0 { "en" } else { "fr" }),
            )),
            Arc::new(StringArray::from(texts)),
        ],
    )
    .unwrap();
    let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    meets
}

/// The ids of the first `n` rows that meet the condition, and how many rows that takes.
fn first_meeting(meets: &[bool], n: usize) -> (Vec<String>, usize) {
    let ids: Vec<usize> = (0..meets.len()).filter(|&i| meets[i]).take(n).collect();
    let needed = ids.last().map_or(meets.len(), |last| last + 1);
    (ids.iter().map(ToString::to_string).collect(), needed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_over_ai_filter_asks_at_most_twice_what_it_needs_plus_a_pack() {
    let sim = simulator(SimConfig::default()).await;
    for selectivity in [0.9, 0.5, 0.05] {
        let ctx = session(&sim, &[("pack_rows", &PACK_ROWS.to_string())]);
        let meets = register(&ctx, selectivity);
        let (expected, needed) = first_meeting(&meets, 5);
        sim.reset_stats();
        let ids = column(
            &ctx,
            &format!("SELECT id FROM t WHERE ai_filter(text, '{CONDITION}') LIMIT 5"),
        )
        .await
        .unwrap();
        let asked = sim.stats().questions as usize;
        assert!(
            asked <= 2 * needed + PACK_ROWS,
            "selectivity {selectivity}: {asked} rows asked, {needed} needed"
        );
        assert!(
            asked >= needed,
            "selectivity {selectivity}: {asked} < {needed}"
        );
        let ids: Vec<String> = ids.into_iter().flatten().collect();
        assert_eq!(
            ids, expected,
            "selectivity {selectivity}: the first matches"
        );

        // Without a LIMIT every row is asked, and the first five are the same.
        sim.reset_stats();
        let all = column(
            &ctx,
            &format!("SELECT id FROM t WHERE ai_filter(text, '{CONDITION}')"),
        )
        .await
        .unwrap();
        assert_eq!(sim.stats().questions as usize, ROWS);
        let first: Vec<String> = all.into_iter().flatten().take(5).collect();
        assert_eq!(first, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_reaches_an_ai_filter_on_the_probe_side_of_a_join() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[("pack_rows", &PACK_ROWS.to_string())]);
    let meets = register(&ctx, 0.05);
    let (_, needed) = first_meeting(&meets, 5);
    let sql = format!(
        "SELECT t.id FROM (VALUES ('en'), ('fr')) AS s(lang) JOIN t ON s.lang = t.lang \
         WHERE ai_filter(t.text, '{CONDITION}') LIMIT 5"
    );
    let plan = physical_plan(&ctx, &sql).await;
    assert!(plan.contains(", waves"), "{plan}");
    sim.reset_stats();
    let ids = column(&ctx, &sql).await.unwrap();
    assert_eq!(ids.len(), 5);
    let asked = sim.stats().questions as usize;
    assert!(
        asked <= 2 * needed + PACK_ROWS,
        "{asked} rows asked, {needed} needed"
    );
    for id in ids.into_iter().flatten() {
        assert!(
            meets[id.parse::<usize>().unwrap()],
            "{id} meets the condition"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_before_limit_asks_every_row() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[("pack_rows", &PACK_ROWS.to_string())]);
    let meets = register(&ctx, 0.5);
    let sql =
        format!("SELECT id FROM t WHERE ai_filter(text, '{CONDITION}') ORDER BY id DESC LIMIT 3");
    let plan = physical_plan(&ctx, &sql).await;
    assert!(!plan.contains("waves"), "{plan}");
    sim.reset_stats();
    let ids = column(&ctx, &sql).await.unwrap();
    assert_eq!(sim.stats().questions as usize, ROWS);
    let expected: Vec<String> = (0..ROWS)
        .rev()
        .filter(|&i| meets[i])
        .take(3)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ids.into_iter().flatten().collect::<Vec<_>>(), expected);
}
