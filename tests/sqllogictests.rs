//! Runs the `.slt` files under `tests/slt/` against blossom sessions whose provider is
//! the bundled simulator on 127.0.0.1 (a fresh simulator per file, over real HTTP).
//!
//! Besides the AI functions, each session has test-only functions to look at and steer
//! that simulator: `sim_requests()` (chat requests it received so far),
//! `sim_questions()` (rows, packed items and join pairs those requests asked about),
//! `sim_peak_in_flight()`, `sim_reset()` (zeroes its counters, returns 0) and
//! `sim_fault('<kind>', <rate>)` (sets a fault rate: server_error, rate_limited, hang,
//! drop_connection, malformed_json, empty_content, payment_required, and the packed-answer
//! misbehaviours pack_drop_id, pack_duplicate_id, pack_unknown_id, pack_invalid_answer,
//! pack_shuffle; returns the kind), `sim_model_requests('<model>')` (chat requests that
//! asked for that model) and `sim_json_requests()` (chat requests that asked for a JSON
//! answer).
//!
//! `cargo test --test sqllogictests [-- FILTER]` runs the files whose name contains FILTER.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use blossom_sql::BlossomSessionBuilder;
use blossom_sql::sim::{SimConfig, Simulator};
use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{
    DataFusionError, Result, ScalarValue, cast::as_float64_array, cast::as_string_array,
};
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

/// One blossom session wired to one simulator.
struct BlossomDb {
    ctx: SessionContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for BlossomDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>> {
        let frame = self.ctx.sql(sql).await?;
        let schema = frame.schema().as_arrow().clone();
        let batches = frame.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, column)| {
                            let text = f.value(row).to_string();
                            if text.is_empty() && column.is_valid(row) {
                                "(empty)".to_string()
                            } else {
                                text
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "blossom"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else if matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

/// A session pointed at `sim`, with fast retries, no persistent response cache (the
/// files count requests; `cache.slt` turns it on in a directory of its own), no
/// packing (`packing.slt` turns it on) and the test-only `sim_*` functions.
fn session(sim: &Arc<Simulator>) -> Result<SessionContext> {
    let ctx = BlossomSessionBuilder::new()
        .with_option("provider", "custom")?
        .with_base_url(&sim.base_url())?
        .with_model("blossom-sim")?
        .with_option("max_retries", "3")?
        .with_option("retry_initial_backoff_ms", "5")?
        .with_option("retry_max_backoff_ms", "20")?
        .with_option("request_timeout", "2")?
        .with_option("cache", "off")?
        // The files count requests per row; packing.slt turns packing back on.
        .with_option("pack_rows", "1")?
        .build()?;
    register_sim_functions(&ctx, sim);
    Ok(ctx)
}

fn register_sim_functions(ctx: &SessionContext, sim: &Arc<Simulator>) {
    let counter = |name: &str, read: fn(&Simulator) -> i64| {
        let sim = Arc::clone(sim);
        create_udf(
            name,
            vec![],
            DataType::Int64,
            Volatility::Volatile,
            Arc::new(move |_: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(read(&sim)))))
            }),
        )
    };
    ctx.register_udf(counter("sim_requests", |s| s.stats().requests as i64));
    ctx.register_udf(counter("sim_questions", |s| s.stats().questions as i64));
    ctx.register_udf(counter("sim_peak_in_flight", |s| {
        s.stats().peak_in_flight as i64
    }));
    ctx.register_udf(counter("sim_json_requests", |s| {
        s.stats().json_requests as i64
    }));
    ctx.register_udf(counter("sim_reset", |s| {
        s.reset_stats();
        0
    }));
    let sim_for_models = Arc::clone(sim);
    ctx.register_udf(create_udf(
        "sim_model_requests",
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let models = as_string_array(&arrays[0])?;
            let by_model = sim_for_models.stats().requests_by_model;
            let counts: Int64Array = models
                .iter()
                .map(|model| model.map(|m| by_model.get(m).copied().unwrap_or(0) as i64))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(counts) as ArrayRef))
        }),
    ));
    let sim_for_faults = Arc::clone(sim);
    ctx.register_udf(create_udf(
        "sim_fault",
        vec![DataType::Utf8, DataType::Float64],
        DataType::Utf8,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let kinds = as_string_array(&arrays[0])?;
            let rates = as_float64_array(&arrays[1])?;
            for row in 0..kinds.len() {
                set_fault(&sim_for_faults, kinds.value(row), rates.value(row))?;
            }
            Ok(ColumnarValue::Array(Arc::clone(&arrays[0]) as ArrayRef))
        }),
    ));
}

fn set_fault(sim: &Simulator, kind: &str, rate: f64) -> Result<()> {
    let mut config = sim.config();
    let faults = &mut config.faults;
    let slot = match kind {
        "server_error" => &mut faults.server_error,
        "rate_limited" => &mut faults.rate_limited,
        "hang" => &mut faults.hang,
        "drop_connection" => &mut faults.drop_connection,
        "malformed_json" => &mut faults.malformed_json,
        "empty_content" => &mut faults.empty_content,
        "pack_drop_id" => &mut faults.pack_drop_id,
        "pack_duplicate_id" => &mut faults.pack_duplicate_id,
        "pack_unknown_id" => &mut faults.pack_unknown_id,
        "pack_invalid_answer" => &mut faults.pack_invalid_answer,
        "pack_shuffle" => &mut faults.pack_shuffle,
        "payment_required" => &mut faults.payment_required,
        other => {
            return Err(DataFusionError::Execution(format!(
                "unknown fault kind '{other}'"
            )));
        }
    };
    *slot = rate;
    faults.retry_after = std::time::Duration::from_millis(10);
    faults.hang_for = std::time::Duration::from_secs(5);
    sim.set_config(config);
    Ok(())
}

fn slt_files(filter: Option<&str>) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| filter.is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    files.sort();
    files
}

#[tokio::main]
async fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let files = slt_files(filter.as_deref());
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let sim = Arc::new(
            Simulator::start(SimConfig::default())
                .await
                .unwrap_or_else(|e| panic!("cannot start the simulator: {e}")),
        );
        let sim_for_runner = Arc::clone(&sim);
        let mut runner = sqllogictest::Runner::new(move || {
            let sim = Arc::clone(&sim_for_runner);
            async move {
                Ok::<_, DataFusionError>(BlossomDb {
                    ctx: session(&sim)?,
                })
            }
        });
        let name = file
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(file)
            .display()
            .to_string();
        match runner.run_file_async(file).await {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("test {name} ... FAILED\n{e}\n");
                failed += 1;
            }
        }
        let _ = Arc::into_inner(sim).map(Simulator::shutdown);
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 || files.is_empty() {
        std::process::exit(1);
    }
}
