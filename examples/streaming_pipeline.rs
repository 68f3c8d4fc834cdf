//! The seed guide's `StreamingPipeline` as one SQL statement: NDJSON records from an
//! HTTP stream, `sentiment()` per record, each result POSTed to an HTTP sink, with the
//! processed, delivered and error counts and the uptime of `get_stats()`.
//!
//! The stream and the sink are local test servers (`sim::StreamServer`, which sends
//! `data/events.ndjson` a record every 50 ms, and `sim::SinkServer`, which refuses one
//! batch with a 400), so the example runs anywhere.
//!
//! ```text
//! cargo run --example streaming_pipeline -- --simulate   # bundled simulator, no network
//! POLLINATIONS_API_KEY=sk_... cargo run --example streaming_pipeline
//! ```

use std::time::Duration;

use blossom_sql::BlossomSessionBuilder;
use blossom_sql::observe::{StreamStats, session_stats};
use blossom_sql::sim::{Script, SimConfig, Simulator, SinkServer, State, StreamServer};
use datafusion::common::{DataFusionError, Result};

#[tokio::main]
async fn main() -> Result<()> {
    let mut builder = BlossomSessionBuilder::from_env()?;
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

    let events = std::fs::read_to_string("data/events.ndjson")
        .map_err(|e| DataFusionError::Execution(format!("data/events.ndjson: {e}")))?;
    let mut lines: Vec<String> = events.lines().map(str::to_string).collect();
    lines.insert(10, "a line that is no record".to_string());
    let stream = StreamServer::start(vec![Script::lines(lines, Duration::from_millis(50))]).await;
    let sink = SinkServer::start(State {
        refuse_marker: Some("\"id\":20,".to_string()).into(),
        ..State::default()
    })
    .await;

    for statement in [
        format!(
            "CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR, sent_at DOUBLE) \
             STORED AS NDJSON LOCATION '{}' OPTIONS ('dead_letter' 'out/events.bad.ndjson')",
            stream.url()
        ),
        format!(
            "CREATE EXTERNAL TABLE scored (id BIGINT, sent_at DOUBLE, s VARCHAR) \
             STORED AS NDJSON LOCATION '{}' \
             OPTIONS ('batch_rows' '10', 'dead_letter' 'out/scored.refused.ndjson')",
            sink.url()
        ),
    ] {
        ctx.sql(&statement).await?.collect().await?;
    }
    ctx.sql(
        "INSERT INTO scored SELECT id, sent_at, sentiment(text) AS s FROM events WHERE text <> ''",
    )
    .await?
    .show()
    .await?;

    // The seed's get_stats(): processed, delivered, errors, uptime.
    let streams = ctx
        .state()
        .config()
        .get_extension::<StreamStats>()
        .map(|s| s.snapshot())
        .unwrap_or_default();
    let calls = session_stats(&ctx).map(|s| s.snapshot());
    println!(
        "records in {} · delivered {} · dead-lettered {} · bad lines {} · requests {} · uptime {:.1} s",
        streams.records_in,
        streams.delivered,
        streams.dead_lettered,
        streams.malformed,
        calls.map_or(0, |c| c.requests),
        streams.uptime_ms as f64 / 1_000.0
    );
    let received: usize = sink.accepted().iter().map(|p| p.lines.len()).sum();
    println!("the sink received {received} records; refused ones are in out/scored.refused.ndjson");
    Ok(())
}
