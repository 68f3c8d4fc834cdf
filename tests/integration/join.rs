//! Semantic joins on `ai_match`: blocks of texts per side give the same pairs as asking
//! pair by pair, for a tenth of the tokens; `LIMIT` stops asking; broken block answers
//! are asked again smaller; the embedding pre-filter and symmetric conditions ask fewer
//! pairs; a key equality narrows the candidates; outer joins are refused.

use std::collections::BTreeSet;
use std::sync::Arc;

use blossom_sql::observe::session_stats;
use blossom_sql::sim::{FaultConfig, SimConfig, Simulator, texts_match};
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::common::*;

const CONDITION: &str = "the two reviews express the same opinion";

/// `n` short reviews `(id, cat, text)`: positive, negative or neutral in turn, of four
/// categories.
fn reviews(n: usize) -> Vec<String> {
    let moods = [
        "works great, I love it",
        "arrived broken, terrible",
        "it is a chair",
        "excellent value, amazing",
        "awful, slow and poor",
    ];
    (0..n)
        .map(|i| format!("review {i}: {}", moods[(i * 7) % moods.len()]))
        .collect()
}

fn register(ctx: &SessionContext, texts: &[String]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("cat", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..texts.len() as i64)),
            Arc::new(StringArray::from_iter_values(
                (0..texts.len()).map(|i| ["a", "b", "c", "d"][i % 4]),
            )),
            Arc::new(StringArray::from(texts.to_vec())),
        ],
    )
    .unwrap();
    let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
    ctx.register_table("r", Arc::new(table)).unwrap();
}

/// The `(a, b)` id pairs a query gives (its first two columns).
async fn pairs(ctx: &SessionContext, sql: &str) -> BTreeSet<(i64, i64)> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut pairs = BTreeSet::new();
    for batch in batches {
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let b = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for i in 0..batch.num_rows() {
            assert!(pairs.insert((a.value(i), b.value(i))), "pair listed twice");
        }
    }
    pairs
}

/// The pairs `keep` accepts whose texts match, as the simulator judges each alone.
fn matching(texts: &[String], keep: impl Fn(usize, usize) -> bool) -> BTreeSet<(i64, i64)> {
    let mut expected = BTreeSet::new();
    for (i, a) in texts.iter().enumerate() {
        for (j, b) in texts.iter().enumerate() {
            if keep(i, j) && texts_match(a, b) {
                expected.insert((i as i64, j as i64));
            }
        }
    }
    expected
}

fn self_join(extra: &str) -> String {
    format!(
        "SELECT a.id, b.id FROM r a JOIN r b ON a.id < b.id \
         AND ai_match(a.text, b.text, '{CONDITION}'){extra}"
    )
}

/// Tokens the simulator counted since its last reset.
fn tokens(sim: &Simulator) -> u64 {
    let stats = sim.stats();
    stats.prompt_tokens + stats.completion_tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_give_the_pairs_of_pair_by_pair_for_a_tenth_of_the_tokens() {
    let sim = simulator(SimConfig::default()).await;
    let texts = reviews(128);
    let expected = matching(&texts, |i, j| i < j);
    assert!(expected.len() > 1_000, "{} matching pairs", expected.len());

    let one_by_one = session(&sim, &[("join_block", "1"), ("max_concurrency", "64")]);
    register(&one_by_one, &texts);
    sim.reset_stats();
    assert_eq!(pairs(&one_by_one, &self_join("")).await, expected);
    let pair_requests = sim.stats().requests;
    let pair_tokens = tokens(&sim);
    assert_eq!(pair_requests, 128 * 127 / 2);

    let blocks = session(&sim, &[]);
    register(&blocks, &texts);
    let plan = physical_plan(&blocks, &self_join("")).await;
    assert!(plan.contains("BlossomAiJoinExec"), "{plan}");
    sim.reset_stats();
    assert_eq!(pairs(&blocks, &self_join("")).await, expected);
    let block_tokens = tokens(&sim);
    assert!(
        block_tokens * 10 <= pair_tokens,
        "blocks {block_tokens} tokens, pair by pair {pair_tokens}"
    );
    assert!(sim.stats().requests < 100, "{:?}", sim.stats().requests);

    // LIMIT 10: at most a hundredth of the pair-by-pair tokens.
    sim.reset_stats();
    let limited = pairs(&blocks, &self_join(" LIMIT 10")).await;
    assert_eq!(limited.len(), 10);
    assert!(limited.is_subset(&expected));
    let limit_tokens = tokens(&sim);
    assert!(
        limit_tokens * 100 <= pair_tokens,
        "LIMIT 10: {limit_tokens} tokens, pair by pair {pair_tokens}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_where_over_two_tables_and_a_key_equality_plan_a_semantic_join() {
    let sim = simulator(SimConfig::default()).await;
    let texts = reviews(40);
    let ctx = session(&sim, &[]);
    register(&ctx, &texts);
    let cross = format!(
        "SELECT a.id, b.id FROM r a, r b WHERE a.id <> b.id \
         AND ai_match(a.text, b.text, '{CONDITION}')"
    );
    let plan = physical_plan(&ctx, &cross).await;
    assert!(plan.contains("BlossomAiJoinExec"), "{plan}");
    assert_eq!(pairs(&ctx, &cross).await, matching(&texts, |i, j| i != j));

    // The right table's text first: its texts are the prompts' A side.
    let swapped = format!(
        "SELECT a.id, b.id FROM r a, r b WHERE a.id < b.id \
         AND ai_match(b.text, a.text, '{CONDITION}')"
    );
    assert!(
        physical_plan(&ctx, &swapped)
            .await
            .contains("BlossomAiJoinExec")
    );
    assert_eq!(pairs(&ctx, &swapped).await, matching(&texts, |i, j| i < j));

    let keyed = format!(
        "SELECT a.id, b.id FROM r a JOIN r b ON a.cat = b.cat AND a.id < b.id \
         AND ai_match(a.text, b.text, '{CONDITION}')"
    );
    sim.reset_stats();
    assert_eq!(
        pairs(&ctx, &keyed).await,
        matching(&texts, |i, j| i % 4 == j % 4 && i < j)
    );
    // Only pairs of one category are asked: 4 categories of 10 texts.
    assert!(sim.stats().questions <= 4 * 10 * 10, "{:?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_block_answers_are_asked_again_in_halves() {
    let sim = faulty_simulator(FaultConfig {
        pack_duplicate_id: 0.15,
        pack_unknown_id: 0.15,
        pack_invalid_answer: 0.15,
        ..FaultConfig::default()
    })
    .await;
    let texts = reviews(48);
    let ctx = session(&sim, &[("join_block", "8")]);
    register(&ctx, &texts);
    assert_eq!(
        pairs(&ctx, &self_join("")).await,
        matching(&texts, |i, j| i < j)
    );
    let metrics = column(
        &ctx,
        "SELECT CAST(repacked_rows AS VARCHAR) FROM blossom_metrics() WHERE function = 'ai_match'",
    )
    .await
    .unwrap();
    let repacked: u64 = metrics[0].as_deref().unwrap().parse().unwrap();
    assert!(repacked > 0, "some blocks were asked again");
    assert_eq!(session_stats(&ctx).unwrap().snapshot().failed_rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefilter_and_symmetry_ask_fewer_pairs() {
    let sim = simulator(SimConfig::default()).await;
    let texts = reviews(64);
    let all_ordered = matching(&texts, |i, j| i != j);
    let ordered = format!(
        "SELECT a.id, b.id FROM r a JOIN r b ON a.id <> b.id \
         AND ai_match(a.text, b.text, '{CONDITION}')"
    );

    let plain = session(&sim, &[]);
    register(&plain, &texts);
    sim.reset_stats();
    assert_eq!(pairs(&plain, &ordered).await, all_ordered);
    let plain_tokens = tokens(&sim);

    // Symmetric: each unordered pair asked once, both orders given.
    let symmetric = session(&sim, &[("join_symmetric", "true")]);
    register(&symmetric, &texts);
    sim.reset_stats();
    assert_eq!(pairs(&symmetric, &ordered).await, all_ordered);
    let symmetric_tokens = tokens(&sim);
    assert!(
        symmetric_tokens * 10 < plain_tokens * 7,
        "symmetric {symmetric_tokens}, ordered {plain_tokens}"
    );

    // Top 3 neighbours of each left text: at most 3 pairs per left text are asked.
    let top = session(&sim, &[("join_prefilter", "top:3")]);
    register(&top, &texts);
    let found = pairs(&top, &ordered).await;
    assert!(found.is_subset(&all_ordered));
    assert!(!found.is_empty());
    let per_left = found
        .iter()
        .fold(std::collections::BTreeMap::new(), |mut m, (a, _)| {
            *m.entry(*a).or_insert(0) += 1;
            m
        });
    assert!(per_left.values().all(|n| *n <= 3), "{per_left:?}");

    // A threshold no two different texts reach: nothing is asked.
    let strict = session(&sim, &[("join_prefilter", "cosine:0.9999")]);
    register(&strict, &texts);
    sim.reset_stats();
    assert!(pairs(&strict, &ordered).await.is_empty());
    assert_eq!(sim.stats().questions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_join_on_ai_match_is_refused_with_the_way_out() {
    let sim = simulator(SimConfig::default()).await;
    let ctx = session(&sim, &[]);
    register(&ctx, &reviews(4));
    let error = ctx
        .sql(&format!(
            "SELECT a.id, b.id FROM r a LEFT JOIN r b ON ai_match(a.text, b.text, '{CONDITION}')"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("LEFT JOIN") && message.contains("inner JOIN"),
        "{message}"
    );
}
