//! Multi-row packing (`blossom.pack_rows`) against the simulator: for 10,000 sentiment
//! rows of unique texts, and the same with 30% duplicate texts, the requests per row and
//! the wall time against the bound for pack_rows 1, 4, 8, 16 and 32; then, with about 5%
//! of packed answers misbehaving, how many rows got a value other than their own
//! single-row answer (the target is 0) and the extra requests repair cost; last, a model
//! that never keeps the packing protocol: its requests and tokens against not packing
//! (the target is at most 1.10).
//!
//! ```text
//! cargo bench --bench packing            # everything (about 2 minutes)
//! cargo bench --bench packing -- quick   # unique texts, pack_rows 1 and 16
//! cargo bench --bench packing -- tokens  # only the prompt tokens of short texts
//! cargo bench --bench packing -- score   # ai_score against scoring through categorize
//! ```
//!
//! The `tokens` section packs 2,000 sentiment rows of about 150 characters with the
//! default packing settings, without latency, and compares the prompt tokens the
//! simulator counted with the texts' own tokens (the target is at most 1.15), with
//! clean and with about 5% misbehaving answers. Token counts do not depend on the build,
//! so the debug profile is enough: `cargo bench --profile dev --bench packing -- tokens`.
//!
//! The simulated model takes 50 ms per request plus 2 ms per answer token, so a packed
//! answer, being longer, takes longer, as a real model's would. The bound of a run is
//! `(requests × base latency + answer tokens × 2 ms) / max_concurrency`, with the base
//! latency measured (the median of 20 sequential requests, less their tokens' share):
//! the time the simulator needs at best for what was asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::sim::{FaultConfig, SimConfig, Simulator, estimate_tokens, sentiment_label};
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;

const ROWS: usize = 10_000;
const BATCH_ROWS: usize = 8_192;
const MAX_CONCURRENCY: usize = 32;
const BASE_LATENCY: Duration = Duration::from_millis(50);
const LATENCY_PER_TOKEN: Duration = Duration::from_millis(2);
/// Each of the four harmful misbehaviours (drop, repeat or invent an id, an invalid
/// answer) at 1.25%: about 5% of packed answers misbehave. Shuffling, harmless, at 5%.
const MISBEHAVIOUR_EACH: f64 = 0.0125;

/// `ROWS` texts, a third each positive, negative and neutral; with `duplicates`, 30 of
/// every 100 rows repeat an earlier text.
fn texts(duplicates: bool) -> Vec<String> {
    (0..ROWS)
        .map(|i| {
            let i = if duplicates && i % 100 < 30 { i / 3 } else { i };
            let mood = ["was great", "arrived broken", "is a chair"][i % 3];
            format!("order {i}: the thing {mood}")
        })
        .collect()
}

struct Measured {
    requests: u64,
    prompt_tokens: u64,
    tokens: u64,
    wall: Duration,
    bound: Duration,
    differing: usize,
}

/// The simulator's base latency: the median of 20 sequential requests, less the share
/// of their answer's tokens.
async fn base_latency(sim: &Simulator) -> Duration {
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", sim.base_url());
    let body =
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "calibrate"}]});
    let mut samples = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let response = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("calibrates");
        let answer: serde_json::Value = response.json().await.expect("calibration answer");
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        let tokens = u32::try_from(estimate_tokens(content)).unwrap_or(0);
        samples.push(start.elapsed().saturating_sub(LATENCY_PER_TOKEN * tokens));
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// About 5% of packed answers misbehaving.
fn misbehaving() -> FaultConfig {
    FaultConfig {
        pack_drop_id: MISBEHAVIOUR_EACH,
        pack_duplicate_id: MISBEHAVIOUR_EACH,
        pack_unknown_id: MISBEHAVIOUR_EACH,
        pack_invalid_answer: MISBEHAVIOUR_EACH,
        pack_shuffle: 0.05,
        ..FaultConfig::default()
    }
}

async fn run(texts: &[String], pack_rows: usize, faults: FaultConfig) -> Measured {
    let pack_rows = pack_rows.to_string();
    measure(texts, &[("pack_rows", &pack_rows)], faults, true).await
}

/// Runs sentiment over `texts` with `options` on top of the defaults, and the
/// simulator's latency when `timed`.
async fn measure(
    texts: &[String],
    options: Options<'_>,
    faults: FaultConfig,
    timed: bool,
) -> Measured {
    let (latency, latency_per_token) = if timed {
        (BASE_LATENCY, LATENCY_PER_TOKEN)
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    let sim = Simulator::start(SimConfig {
        latency,
        latency_per_token,
        faults,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let base = if timed {
        base_latency(&sim).await
    } else {
        Duration::ZERO
    };
    sim.reset_stats();
    let mut builder = BlossomSessionBuilder::new()
        .with_simulator(&sim)
        .and_then(|b| b.with_option("cache", "off"))
        .and_then(|b| b.with_option("max_concurrency", &MAX_CONCURRENCY.to_string()));
    for (key, value) in options {
        builder = builder.and_then(|b| b.with_option(key, value));
    }
    let ctx = builder.and_then(|b| b.build()).expect("session");
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
    let batches: Vec<RecordBatch> = texts
        .chunks(BATCH_ROWS)
        .map(|chunk| {
            let array = StringArray::from_iter_values(chunk.iter());
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)]).expect("batch")
        })
        .collect();
    let table = MemTable::try_new(schema, vec![batches]).expect("table");
    ctx.register_table("t", Arc::new(table)).expect("register");

    let start = Instant::now();
    let out = ctx
        .sql("SELECT text, sentiment(text) FROM t")
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    let wall = start.elapsed();

    let mut rows = 0;
    let mut differing = 0;
    for batch in &out {
        let (text, label) = (
            batch.column(0).as_string::<i32>(),
            batch.column(1).as_string::<i32>(),
        );
        for i in 0..batch.num_rows() {
            rows += 1;
            if label.is_null(i) || label.value(i) != sentiment_label(text.value(i)) {
                differing += 1;
            }
        }
    }
    assert_eq!(rows, texts.len(), "every row comes out");
    let stats = sim.stats();
    let tokens = u32::try_from(stats.completion_tokens).unwrap_or(u32::MAX);
    let busy =
        base * u32::try_from(stats.requests).unwrap_or(u32::MAX) + LATENCY_PER_TOKEN * tokens;
    Measured {
        requests: stats.requests,
        prompt_tokens: stats.prompt_tokens,
        tokens: stats.prompt_tokens + stats.completion_tokens,
        wall,
        bound: busy / MAX_CONCURRENCY as u32,
        differing,
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "tokens") {
        short_text_tokens().await;
        return;
    }
    if std::env::args().any(|a| a == "score") {
        scores().await;
        return;
    }
    let quick = std::env::args().any(|a| a == "quick");
    let datasets: &[(&str, bool)] = if quick {
        &[("unique", false)]
    } else {
        &[("unique", false), ("30% duplicates", true)]
    };
    let sizes: &[usize] = if quick { &[1, 16] } else { &[1, 4, 8, 16, 32] };
    println!(
        "{ROWS} sentiment rows, {} ms + {} ms per answer token, max_concurrency {MAX_CONCURRENCY}",
        BASE_LATENCY.as_millis(),
        LATENCY_PER_TOKEN.as_millis()
    );
    println!(
        "| texts | pack_rows | misbehaving answers | requests | requests/row | wall (s) | bound (s) | ratio | rows differing | repair requests |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, duplicates) in datasets {
        let texts = texts(*duplicates);
        for &pack_rows in sizes {
            let clean = run(&texts, pack_rows, FaultConfig::default()).await;
            print_row(name, pack_rows, "0", &clean, None);
            if pack_rows > 1 {
                let bad = run(&texts, pack_rows, misbehaving()).await;
                print_row(name, pack_rows, "~5%", &bad, Some(clean.requests));
            }
        }
    }
    never_complying(&texts(false)).await;
    short_text_tokens().await;
}

/// Session options on top of the defaults.
type Options<'a> = &'a [(&'a str, &'a str)];

/// Rows of the `tokens` section.
const SHORT_ROWS: usize = 2_000;

/// `SHORT_ROWS` distinct texts of about 150 characters, a third each positive, negative
/// and neutral.
fn short_texts() -> Vec<String> {
    const FILLER: [&str; 8] = [
        "the parcel came on a tuesday",
        "my neighbour saw it first",
        "we use it in the kitchen",
        "the box was blue and square",
        "it replaced an older model",
        "the manual has twelve pages",
        "my son carried it upstairs",
        "the colour matches the wall",
    ];
    (0..SHORT_ROWS)
        .map(|i| {
            let mood = ["it was great", "it arrived broken", "it is a chair"][i % 3];
            let mut text = format!("Review {i}: {mood}");
            let mut k = i;
            while text.len() < 140 {
                text.push_str(", ");
                text.push_str(FILLER[k % FILLER.len()]);
                k = k / 3 + 5;
            }
            text.push('.');
            text
        })
        .collect()
}

/// Packed classification of short texts with the default packing settings and by
/// token budget: prompt tokens against the texts' own.
async fn short_text_tokens() {
    let texts = short_texts();
    let own: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    println!();
    println!(
        "{SHORT_ROWS} sentiment rows of {} characters on average ({own} tokens of text), default packing settings:",
        chars / SHORT_ROWS
    );
    println!(
        "| run | requests | prompt tokens | prompt / texts' own tokens | answer tokens | rows differing |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let runs: [(&str, Options, FaultConfig); 3] = [
        (
            "pack_rows 1 (no packing)",
            &[("pack_rows", "1")],
            FaultConfig::default(),
        ),
        ("defaults", &[], FaultConfig::default()),
        ("defaults, ~5% misbehaving", &[], misbehaving()),
    ];
    for (name, options, faults) in runs {
        let m = measure(&texts, options, faults, false).await;
        print_tokens(name, &m, own);
    }
    println!();
    println!("The same by token budget, pack_rows 64:");
    println!(
        "| pack_tokens | requests | prompt tokens | prompt / texts' own tokens | answer tokens | rows differing |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for budget in ["250", "500", "1000", "2000", "4000"] {
        for (faults, name) in [
            (FaultConfig::default(), budget.to_string()),
            (misbehaving(), format!("{budget}, ~5% misbehaving")),
        ] {
            let options = [("pack_rows", "64"), ("pack_tokens", budget)];
            let m = measure(&texts, &options, faults, false).await;
            print_tokens(&name, &m, own);
        }
    }
}

/// Scoring the short texts from 1 to 5 with `ai_score`, against forcing it through
/// `categorize` with one label per score, as users did before: the simulator's requests
/// and tokens, packed as by default and row by row.
async fn scores() {
    let texts = short_texts();
    let labels = "'1 very negative', '2 negative', '3 neutral', '4 positive', '5 very positive'";
    let queries = [
        (
            "categorize with 5 score labels",
            format!("SELECT categorize(text, {labels}) FROM t"),
        ),
        (
            "ai_score(text, question, 1, 5)",
            "SELECT ai_score(text, 'how positive is the review', 1, 5) FROM t".to_string(),
        ),
    ];
    println!();
    println!("{SHORT_ROWS} rows of about 150 characters scored from 1 to 5:");
    println!("| query | pack_rows | requests | prompt tokens | answer tokens |");
    println!("|---|---:|---:|---:|---:|");
    for (name, sql) in &queries {
        for pack_rows in ["1", "default"] {
            let sim = Simulator::start(SimConfig::default())
                .await
                .expect("simulator starts");
            let mut builder = BlossomSessionBuilder::new()
                .with_simulator(&sim)
                .and_then(|b| b.with_option("cache", "off"))
                .and_then(|b| b.with_option("max_concurrency", &MAX_CONCURRENCY.to_string()));
            if pack_rows != "default" {
                builder = builder.and_then(|b| b.with_option("pack_rows", pack_rows));
            }
            let ctx = builder.and_then(|b| b.build()).expect("session");
            let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
            let array = StringArray::from_iter_values(texts.iter());
            let batch =
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)]).expect("batch");
            let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
            ctx.register_table("t", Arc::new(table)).expect("register");
            let out = ctx
                .sql(sql)
                .await
                .expect("plans")
                .collect()
                .await
                .expect("runs");
            let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(rows, SHORT_ROWS, "every row comes out");
            let stats = sim.stats();
            println!(
                "| {name} | {pack_rows} | {} | {} | {} |",
                stats.requests, stats.prompt_tokens, stats.completion_tokens
            );
        }
    }
}

fn print_tokens(name: &str, m: &Measured, own: u64) {
    println!(
        "| {name} | {} | {} | {:.3} | {} | {} |",
        m.requests,
        m.prompt_tokens,
        m.prompt_tokens as f64 / own as f64,
        m.tokens - m.prompt_tokens,
        m.differing
    );
}

/// A model that answers every packed request as one text: what packing costs then,
/// against not packing at all.
async fn never_complying(texts: &[String]) {
    let unpacked = run(texts, 1, FaultConfig::default()).await;
    let never = FaultConfig {
        pack_ignore: 1.0,
        ..FaultConfig::default()
    };
    let packed = run(texts, 16, never).await;
    println!();
    println!("A model that never keeps the packing protocol, pack_rows 16, unique texts:");
    println!("| run | requests | requests/row | tokens | rows differing |");
    println!("|---|---:|---:|---:|---:|");
    for (name, m) in [
        ("pack_rows 1", &unpacked),
        ("pack_rows 16, never complies", &packed),
    ] {
        println!(
            "| {name} | {} | {:.3} | {} | {} |",
            m.requests,
            m.requests as f64 / ROWS as f64,
            m.tokens,
            m.differing
        );
    }
    println!(
        "ratio to not packing: requests {:.3}, tokens {:.3} (target at most 1.10)",
        packed.requests as f64 / unpacked.requests as f64,
        packed.tokens as f64 / unpacked.tokens as f64,
    );
}

fn print_row(texts: &str, pack_rows: usize, misbehaving: &str, m: &Measured, clean: Option<u64>) {
    let repair = clean.map_or("".to_string(), |c| m.requests.saturating_sub(c).to_string());
    println!(
        "| {texts} | {pack_rows} | {misbehaving} | {} | {:.3} | {:.2} | {:.2} | {:.2} | {} | {repair} |",
        m.requests,
        m.requests as f64 / ROWS as f64,
        m.wall.as_secs_f64(),
        m.bound.as_secs_f64(),
        m.wall.as_secs_f64() / m.bound.as_secs_f64(),
        m.differing,
    );
}
