//! Streaming pipelines: unbounded NDJSON sources and the HTTP sink `INSERT INTO` writes to.

mod sink;
pub use sink::{HttpSink, SinkOptions, sink_table};
