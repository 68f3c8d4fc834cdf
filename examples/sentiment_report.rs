//! Runs blossom SQL from a Rust program: per-language sentiment counts and a few
//! enhanced English reviews from `data/reviews.csv`.
//!
//! ```text
//! cargo run --example sentiment_report -- --simulate   # bundled simulator, no network
//! POLLINATIONS_API_KEY=sk_... cargo run --example sentiment_report
//! ```

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::sim::{SimConfig, Simulator};
use datafusion::common::{DataFusionError, Result};

#[tokio::main]
async fn main() -> Result<()> {
    let mut builder = BlossomSessionBuilder::from_env()?;
    // Keep the simulator alive while the queries run.
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

    ctx.sql(
        "SELECT lang, s AS sentiment, count(*) AS reviews
         FROM (SELECT lang, sentiment(text) AS s FROM 'data/reviews.csv')
         GROUP BY lang, s ORDER BY lang, s",
    )
    .await?
    .show()
    .await?;

    ctx.sql(
        "SELECT id, enhance(text) AS enhanced FROM 'data/reviews.csv'
         WHERE lang = 'en' AND rating = 5 ORDER BY id LIMIT 5",
    )
    .await?
    .show()
    .await?;
    Ok(())
}
