//! The multi-stage pipeline (insights, then a classification, then a summary) called
//! from a Rust program: each stage is a CTE, the result is written as JSON lines and
//! the session's AI counters are printed.
//!
//! ```text
//! cargo run --example pipeline -- --simulate   # bundled simulator, no network
//! POLLINATIONS_API_KEY=sk_... cargo run --example pipeline
//! ```

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::observe::session_stats;
use blossom_sql::sim::{SimConfig, Simulator};
use datafusion::common::{DataFusionError, Result};

const PIPELINE: &str = "
COPY (
  WITH stage1 AS (SELECT id, title, insights(text) AS insights FROM 'data/articles.json'),
       stage2 AS (SELECT id, title, insights, sentiment(insights) AS tone FROM stage1)
  SELECT id, title, tone, enhance(insights) AS summary FROM stage2 ORDER BY tone, id
) TO 'out/articles_from_rust.json' STORED AS JSON";

#[tokio::main]
async fn main() -> Result<()> {
    let mut builder = BlossomSessionBuilder::from_env()?.with_option("max_concurrency", "16")?;
    // Keep the simulator alive while the pipeline runs.
    let _simulator = if std::env::args().any(|a| a == "--simulate") {
        let sim = Simulator::start(SimConfig::default())
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        eprintln!(
            "answers come from the bundled simulator at {}, not from a model",
            sim.base_url()
        );
        builder = builder.with_simulator(&sim)?;
        Some(sim)
    } else {
        None
    };
    let ctx = builder.build()?;

    ctx.sql(PIPELINE).await?.show().await?;
    ctx.sql("SELECT tone, count(*) AS articles FROM 'out/articles_from_rust.json' GROUP BY tone")
        .await?
        .show()
        .await?;
    if let Some(stats) = session_stats(&ctx) {
        let s = stats.snapshot();
        println!(
            "{} rows asked about, {} requests, {} retries, {} dedup hits, {} failed",
            s.rows, s.requests, s.retries, s.dedup_hits, s.failed_rows
        );
    }
    Ok(())
}
