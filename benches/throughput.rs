//! Throughput of AI calls against the simulator: wall time of a query over unique rows
//! compared with the bound `requests × latency / max_concurrency`.
//!
//! `cargo bench --bench throughput` (add `-- quick` for a smaller run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::sim::{SimConfig, Simulator};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionConfig;

struct Cell {
    rows: usize,
    latency_ms: u64,
    max_concurrency: usize,
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let cells = if quick {
        vec![Cell {
            rows: 1000,
            latency_ms: 50,
            max_concurrency: 32,
        }]
    } else {
        vec![
            Cell {
                rows: 1000,
                latency_ms: 50,
                max_concurrency: 32,
            },
            Cell {
                rows: 400,
                latency_ms: 50,
                max_concurrency: 8,
            },
            Cell {
                rows: 3200,
                latency_ms: 50,
                max_concurrency: 64,
            },
            Cell {
                rows: 2000,
                latency_ms: 20,
                max_concurrency: 32,
            },
        ]
    };
    println!("| rows | latency | max_concurrency | requests | wall (s) | bound (s) | ratio |");
    println!("|-----:|--------:|----------------:|---------:|---------:|----------:|------:|");
    for cell in cells {
        let sim = Simulator::start(SimConfig {
            latency: Duration::from_millis(cell.latency_ms),
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let ctx = BlossomSessionBuilder::new()
            .with_session_config(SessionConfig::new().with_target_partitions(1))
            .with_option("provider", "custom")
            .and_then(|b| b.with_base_url(&sim.base_url()))
            .and_then(|b| b.with_option("max_concurrency", &cell.max_concurrency.to_string()))
            .and_then(|b| b.build())
            .expect("session");
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
        let texts = StringArray::from_iter_values(
            (0..cell.rows).map(|i| format!("review number {i} is great")),
        );
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(texts)]).expect("batch");
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
        )
        .expect("register");

        let start = Instant::now();
        let rows: usize = ctx
            .sql("SELECT sentiment(text) FROM t")
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs")
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        let wall = start.elapsed().as_secs_f64();
        assert_eq!(rows, cell.rows);
        let requests = sim.stats().requests;
        let bound = requests as f64 * cell.latency_ms as f64 / 1000.0 / cell.max_concurrency as f64;
        println!(
            "| {} | {} ms | {} | {} | {:.3} | {:.3} | {:.2} |",
            cell.rows,
            cell.latency_ms,
            cell.max_concurrency,
            requests,
            wall,
            bound,
            wall / bound
        );
    }
}
