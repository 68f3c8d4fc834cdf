//! Throughput of AI calls against the bundled simulator: for each cell, the wall time of
//! a query over unique rows against the bound `requests × latency / max_concurrency`,
//! and their ratio (1.00 is perfect; the target is at most 1.10).
//!
//! ```text
//! cargo bench --bench throughput            # the full grid (about 3 minutes)
//! cargo bench --bench throughput -- quick   # one cell: 1000 rows, 50 ms, 32 in flight
//! cargo bench --bench throughput -- 200ms   # only the cells whose label contains "200ms"
//! ```
//!
//! The grid: AI columns {1, 2} × simulated latency {20 ms, 200 ms} × max_concurrency
//! {8, 64} × input shape {one CSV file, 100 small CSV files, one row per batch}. Each
//! cell is sized so that its bound is about 5 s and it makes at least 20 ×
//! max_concurrency requests.
//!
//! The simulator cannot answer in exactly its nominal latency (tokio's timer rounds a
//! sleep up to the next millisecond, and HTTP on loopback costs a little), so each cell
//! also measures one request's real latency (the median of 20 sequential requests) and
//! prints the ratio against the bound computed with it: that one is the engine's own
//! overhead.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::sim::{SimConfig, Simulator};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// The bound each cell is sized for.
const TARGET_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OneFile,
    SmallFiles,
    RowPerBatch,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::OneFile => "one file",
            Shape::SmallFiles => "100 files",
            Shape::RowPerBatch => "1 row/batch",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    shape: Shape,
    ai_columns: usize,
    latency: Duration,
    max_concurrency: usize,
    /// Rows to use instead of the sizing rule.
    rows: Option<usize>,
}

impl Cell {
    /// Requests for a bound of [`TARGET_BOUND`], at least 20 × max_concurrency.
    fn requests(&self) -> usize {
        let per_second = self.max_concurrency as f64 / self.latency.as_secs_f64();
        let sized = (TARGET_BOUND.as_secs_f64() * per_second).round() as usize;
        sized.max(20 * self.max_concurrency)
    }

    fn rows(&self) -> usize {
        self.rows
            .unwrap_or_else(|| self.requests().div_ceil(self.ai_columns))
    }

    fn label(&self) -> String {
        format!(
            "{} | {} | {}ms | {}",
            self.shape.label(),
            self.ai_columns,
            self.latency.as_millis(),
            self.max_concurrency
        )
    }
}

fn texts(rows: usize, cell_id: usize) -> Vec<String> {
    (0..rows)
        .map(|i| format!("cell {cell_id} review {i}: the product was great and fast"))
        .collect()
}

fn write_csv(path: &Path, texts: &[String]) {
    let mut body = String::from("text\n");
    for text in texts {
        body.push_str(text);
        body.push('\n');
    }
    std::fs::write(path, body).expect("write csv");
}

/// Registers table `t` over the cell's rows in the cell's shape.
async fn register_input(ctx: &SessionContext, cell: &Cell, texts: &[String], dir: &Path) {
    match cell.shape {
        Shape::OneFile => {
            let path = dir.join("one.csv");
            write_csv(&path, texts);
            ctx.register_csv("t", path.to_str().expect("utf-8 path"), Default::default())
                .await
                .expect("register csv");
        }
        Shape::SmallFiles => {
            let files = dir.join("small");
            std::fs::create_dir_all(&files).expect("mkdir");
            let per_file = texts.len().div_ceil(100);
            for (i, chunk) in texts.chunks(per_file).enumerate() {
                write_csv(&files.join(format!("part-{i:03}.csv")), chunk);
            }
            ctx.register_csv(
                "t",
                &format!("{}/", files.to_str().expect("utf-8 path")),
                Default::default(),
            )
            .await
            .expect("register csv dir");
        }
        Shape::RowPerBatch => {
            let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
            let batches = texts
                .iter()
                .map(|t| {
                    RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![Arc::new(StringArray::from(vec![t.as_str()]))],
                    )
                    .expect("batch")
                })
                .collect();
            let table = MemTable::try_new(schema, vec![batches]).expect("table");
            ctx.register_table("t", Arc::new(table)).expect("register");
        }
    }
}

/// The simulator's real latency: the median of 20 sequential requests.
async fn measured_latency(sim: &Simulator) -> Duration {
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
            .expect("calibration request");
        response.bytes().await.expect("calibration answer");
        samples.push(start.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

async fn run(cell: &Cell, cell_id: usize) -> (usize, Duration, Duration) {
    let sim = Simulator::start(SimConfig {
        latency: cell.latency,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let real_latency = measured_latency(&sim).await;
    sim.reset_stats();
    let ctx = BlossomSessionBuilder::new()
        .with_simulator(&sim)
        .and_then(|b| b.with_option("cache", "off"))
        // One request per row: this benchmark is about the pipeline (benches/packing.rs
        // measures packing).
        .and_then(|b| b.with_option("pack_rows", "1"))
        .and_then(|b| b.with_option("max_concurrency", &cell.max_concurrency.to_string()))
        .and_then(|b| b.build())
        .expect("session");
    let dir = tempfile::tempdir().expect("tempdir");
    let texts = texts(cell.rows(), cell_id);
    register_input(&ctx, cell, &texts, dir.path()).await;
    let sql = if cell.ai_columns == 1 {
        "SELECT sentiment(text) FROM t"
    } else {
        "SELECT sentiment(text), enhance(text) FROM t"
    };

    let start = Instant::now();
    let batches = ctx
        .sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    let wall = start.elapsed();

    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, texts.len(), "every row comes out");
    (sim.stats().requests as usize, wall, real_latency)
}

fn grid() -> Vec<Cell> {
    let mut cells = Vec::new();
    for shape in [Shape::OneFile, Shape::SmallFiles, Shape::RowPerBatch] {
        for ai_columns in [1, 2] {
            for latency_ms in [20, 200] {
                for max_concurrency in [8, 64] {
                    cells.push(Cell {
                        shape,
                        ai_columns,
                        latency: Duration::from_millis(latency_ms),
                        max_concurrency,
                        rows: None,
                    });
                }
            }
        }
    }
    cells
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let cells: Vec<(usize, String, Cell)> = if args.iter().any(|a| a == "quick") {
        let cell = Cell {
            shape: Shape::OneFile,
            ai_columns: 1,
            latency: Duration::from_millis(50),
            max_concurrency: 32,
            rows: Some(1000),
        };
        // The closing-note cell: 1000 unique rows, 50 ms, 32 in flight.
        vec![(0, cell.label(), cell)]
    } else {
        grid()
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i, c.label(), c))
            .filter(|(_, label, _)| {
                args.is_empty()
                    || args
                        .iter()
                        .any(|a| label.replace(' ', "").contains(&a.replace(' ', "")))
            })
            .collect()
    };
    println!(
        "| input | AI columns | latency | max_concurrency | requests | wall (s) | bound (s) | ratio | real latency (ms) | ratio vs real latency |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst: f64 = 0.0;
    for (id, label, cell) in cells {
        let (requests, wall, real_latency) = run(&cell, id).await;
        let bound = requests as f64 * cell.latency.as_secs_f64() / cell.max_concurrency as f64;
        let real_bound = requests as f64 * real_latency.as_secs_f64() / cell.max_concurrency as f64;
        let ratio = wall.as_secs_f64() / bound;
        worst = worst.max(ratio);
        println!(
            "| {label} | {requests} | {:.2} | {:.2} | {ratio:.2} | {:.1} | {:.2} |",
            wall.as_secs_f64(),
            bound,
            real_latency.as_secs_f64() * 1000.0,
            wall.as_secs_f64() / real_bound
        );
    }
    println!("\nworst ratio: {worst:.2} (target: at most 1.10)");
}
