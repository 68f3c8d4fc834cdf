//! Helpers shared by the integration tests: starting a simulator and a session on it.

use std::sync::Arc;

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::sim::{FaultConfig, SimConfig, Simulator};
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

/// A simulator with `config`, started on 127.0.0.1.
pub async fn simulator(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

/// A simulator with no latency that injects `faults`.
pub async fn faulty_simulator(faults: FaultConfig) -> Simulator {
    simulator(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await
}

/// A session on `sim` with fast retries, one partition, no persistent response cache
/// (tests count requests), and `options` applied.
pub fn session(sim: &Simulator, options: &[(&str, &str)]) -> SessionContext {
    let mut builder = BlossomSessionBuilder::new()
        .with_session_config(SessionConfig::new().with_target_partitions(1))
        .with_option("provider", "custom")
        .and_then(|b| b.with_base_url(&sim.base_url()))
        .and_then(|b| b.with_model("blossom-sim"))
        .and_then(|b| b.with_option("retry_initial_backoff_ms", "5"))
        .and_then(|b| b.with_option("retry_max_backoff_ms", "20"))
        .and_then(|b| b.with_option("cache", "off"))
        // Most tests count requests per row; packing has tests of its own (packing.rs).
        .and_then(|b| b.with_option("pack_rows", "1"))
        .expect("valid options");
    for (key, value) in options {
        builder = builder.with_option(key, value).expect("valid option");
    }
    builder.build().expect("session builds")
}

/// Registers table `t` with one column `text`: one single batch (one partition).
pub fn register_texts(ctx: &SessionContext, texts: &[Option<String>]) {
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
    let array = StringArray::from(texts.to_vec());
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)]).expect("batch");
    let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
    ctx.register_table("t", Arc::new(table)).expect("register");
}

/// `n` distinct review-like texts, about half positive and half negative.
pub fn unique_texts(n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|i| {
            let mood = if i % 2 == 0 {
                "great and fast"
            } else {
                "broken and late"
            };
            Some(format!("review {i}: the product was {mood}"))
        })
        .collect()
}

/// The physical plan of `sql`, as text.
pub async fn physical_plan(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("explains")
        .collect()
        .await
        .expect("explains");
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("explains")
        .to_string()
}

/// The first column of a query's result, as text.
pub async fn column(ctx: &SessionContext, sql: &str) -> Result<Vec<Option<String>>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut values = Vec::new();
    for batch in batches {
        let column = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let strings = column.as_string::<i32>();
        values.extend(
            (0..strings.len()).map(|i| strings.is_valid(i).then(|| strings.value(i).to_string())),
        );
    }
    Ok(values)
}

/// The sentiment label the simulator gives each text, as `sentiment()` returns it.
pub fn expected_sentiments(texts: &[Option<String>]) -> Vec<Option<String>> {
    texts
        .iter()
        .map(|t| {
            t.as_deref()
                .map(|t| blossom_sql::sim::sentiment_label(t).to_string())
        })
        .collect()
}

/// The `blossom` binary, run from the crate root, with no provider settings inherited
/// from the environment and no persistent response cache (every run counts its own
/// requests).
pub fn blossom_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_blossom"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args(args);
    for var in [
        "BLOSSOM_PROVIDER",
        "BLOSSOM_BASE_URL",
        "BLOSSOM_MODEL",
        "BLOSSOM_API_KEY",
        "POLLINATIONS_API_KEY",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.env("BLOSSOM_CACHE", "off");
    // Most tests count requests per row; a test of the defaults removes this.
    command.env("BLOSSOM_PACK_ROWS", "1");
    command
}
