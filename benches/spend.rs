//! What a query spends for its answer, counted by the simulator: requests, questions
//! (rows, packed items or join pairs asked about) and tokens (prompt + answer).
//!
//! 1. `LIMIT 5` over `ai_filter` on 2,000 rows at selectivities 0.9, 0.5 and 0.05: rows
//!    asked in waves against the rows needed (up to the fifth match; the bound) and
//!    against asking every row, which is what the query cost before waves (the whole
//!    input batch was asked) and what it costs with `ORDER BY` before the `LIMIT`.
//! 2. A self-join of 128 short reviews on `a.id < b.id AND ai_match(...)`: pair by pair
//!    (`blossom.join_block = 1`, one request per pair, the cost before semantic joins)
//!    against blocks of 8, 16 and 32 texts per side, `LIMIT 10`, and the pre-filter;
//!    and the full ordered join (`a.id <> b.id`) with and without
//!    `blossom.join_symmetric`. Every variant without a LIMIT or pre-filter must give
//!    the pair-by-pair result set; `same` says whether it does.
//!
//! ```text
//! cargo bench --bench spend
//! ```

use std::collections::BTreeSet;

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::sim::{SimConfig, Simulator};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::{SessionConfig, SessionContext};

const ROWS: usize = 2_000;
const TEXTS: usize = 128;
const CONDITION: &str = "the two reviews express the same opinion";

/// What the simulator counted for one query.
struct Spent {
    requests: u64,
    questions: u64,
    tokens: u64,
}

fn session(sim: &Simulator, options: &[(&str, &str)]) -> SessionContext {
    let mut builder = BlossomSessionBuilder::new()
        .with_session_config(SessionConfig::new().with_target_partitions(1))
        .with_option("provider", "custom")
        .and_then(|b| b.with_base_url(&sim.base_url()))
        .and_then(|b| b.with_model("blossom-sim"))
        .and_then(|b| b.with_option("cache", "off"))
        .and_then(|b| b.with_option("max_concurrency", "64"))
        .expect("valid options");
    for (key, value) in options {
        builder = builder.with_option(key, value).expect("valid option");
    }
    builder.build().expect("session builds")
}

/// Runs `setup` then `sql`, and what the simulator counted for `sql`, with the result's
/// rows as pairs of its first two integer columns (the first column twice when it has
/// one).
async fn spend(
    sim: &Simulator,
    ctx: &SessionContext,
    setup: &str,
    sql: &str,
) -> (Spent, BTreeSet<(i64, i64)>) {
    ctx.sql(setup)
        .await
        .expect("setup")
        .collect()
        .await
        .expect("setup runs");
    sim.reset_stats();
    let batches = ctx
        .sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    let stats = sim.stats();
    let mut rows = BTreeSet::new();
    for batch in &batches {
        let a = batch.column(0).as_primitive::<Int64Type>();
        let b = batch
            .column(batch.num_columns().min(2) - 1)
            .as_primitive::<Int64Type>();
        for i in 0..a.len() {
            rows.insert((a.value(i), b.value(i)));
        }
    }
    let spent = Spent {
        requests: stats.requests,
        questions: stats.questions,
        tokens: stats.prompt_tokens + stats.completion_tokens,
    };
    (spent, rows)
}

async fn limit_waves(sim: &Simulator) {
    println!("## LIMIT 5 over ai_filter, {ROWS} rows (pack_rows 16)\n");
    println!(
        "| selectivity | rows needed | rows asked | asked / needed | requests | tokens | rows asked without waves | tokens without waves | tokens saved |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for selectivity in [0.9, 0.5, 0.05] {
        let threshold = (selectivity * 1_000.0) as i64;
        let setup = format!(
            "CREATE OR REPLACE VIEW t AS SELECT v AS id, CASE WHEN (v * 7919) % 1000 < {threshold} \
             THEN 'order ' || v || ': I want a refund now' \
             ELSE 'order ' || v || ': the parcel came on time' END AS text \
             FROM generate_series(0, {}) AS g(v)",
            ROWS - 1
        );
        let needed = (0..ROWS as i64)
            .filter(|v| (v * 7_919) % 1_000 < threshold)
            .nth(4)
            .map_or(ROWS as i64, |v| v + 1);
        let ctx = session(sim, &[("pack_rows", "16")]);
        let filter = "SELECT id FROM t WHERE ai_filter(text, 'mentions a refund')";
        let (waves, rows) = spend(sim, &ctx, &setup, &format!("{filter} LIMIT 5")).await;
        assert_eq!(rows.len(), 5);
        let (all, _) = spend(sim, &ctx, &setup, filter).await;
        println!(
            "| {selectivity} | {needed} | {} | {:.2} | {} | {} | {} | {} | {:.1}x |",
            waves.questions,
            waves.questions as f64 / needed as f64,
            waves.requests,
            waves.tokens,
            all.questions,
            all.tokens,
            all.tokens as f64 / waves.tokens as f64
        );
    }
    println!();
}

async fn semantic_join(sim: &Simulator) {
    println!("## Self-join of {TEXTS} reviews on ai_match\n");
    let setup = format!(
        "CREATE OR REPLACE VIEW r AS SELECT v AS id, 'review ' || v || ': ' || \
         CASE (v * 7) % 5 WHEN 0 THEN 'works great, I love it' WHEN 1 THEN 'arrived broken, terrible' \
         WHEN 2 THEN 'it is a chair' WHEN 3 THEN 'excellent value, amazing' \
         ELSE 'awful, slow and poor' END AS text FROM generate_series(0, {}) AS g(v)",
        TEXTS - 1
    );
    let on = format!("ai_match(a.text, b.text, '{CONDITION}')");
    let triangle = format!("SELECT a.id, b.id FROM r a JOIN r b ON a.id < b.id AND {on}");
    let ordered = format!("SELECT a.id, b.id FROM r a JOIN r b ON a.id <> b.id AND {on}");
    let pairs_ctx = session(sim, &[("join_block", "1")]);
    let (pairs, truth) = spend(sim, &pairs_ctx, &setup, &triangle).await;
    let (pairs_ordered, truth_ordered) = spend(sim, &pairs_ctx, &setup, &ordered).await;
    println!(
        "| join | variant | requests | tokens | tokens / pair by pair | matching pairs | same as pair by pair |"
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |join: &str, variant: &str, spent: &Spent, base: &Spent, rows: usize, same: &str| {
        println!(
            "| {join} | {variant} | {} | {} | {:.4} | {rows} | {same} |",
            spent.requests,
            spent.tokens,
            spent.tokens as f64 / base.tokens as f64
        );
    };
    row(
        "a.id < b.id",
        "pair by pair",
        &pairs,
        &pairs,
        truth.len(),
        "-",
    );
    for (variant, options, sql, complete) in [
        (
            "blocks of 8",
            vec![("join_block", "8")],
            triangle.clone(),
            true,
        ),
        ("blocks of 16 (default)", vec![], triangle.clone(), true),
        (
            "blocks of 32",
            vec![("join_block", "32")],
            triangle.clone(),
            true,
        ),
        ("LIMIT 10", vec![], format!("{triangle} LIMIT 10"), false),
        (
            "prefilter top:10",
            vec![("join_prefilter", "top:10")],
            triangle.clone(),
            false,
        ),
    ] {
        let ctx = session(sim, &options);
        let (spent, rows) = spend(sim, &ctx, &setup, &sql).await;
        let same = match complete {
            true => (rows == truth).to_string(),
            false => format!("subset: {}", rows.is_subset(&truth)),
        };
        row("a.id < b.id", variant, &spent, &pairs, rows.len(), &same);
    }
    row(
        "a.id <> b.id",
        "pair by pair",
        &pairs_ordered,
        &pairs_ordered,
        truth_ordered.len(),
        "-",
    );
    for (variant, options) in [
        ("blocks of 16", vec![]),
        ("blocks of 16, symmetric", vec![("join_symmetric", "true")]),
    ] {
        let ctx = session(sim, &options);
        let (spent, rows) = spend(sim, &ctx, &setup, &ordered).await;
        let same = (rows == truth_ordered).to_string();
        row(
            "a.id <> b.id",
            variant,
            &spent,
            &pairs_ordered,
            rows.len(),
            &same,
        );
    }
    println!();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    limit_waves(&sim).await;
    semantic_join(&sim).await;
}
