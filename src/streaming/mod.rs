//! Unbounded NDJSON streams as tables: `CREATE UNBOUNDED EXTERNAL TABLE ... STORED AS
//! NDJSON LOCATION 'http://...'` (also `https://`, `ws://`, `wss://`, `/dev/stdin`),
//! read as each line arrives, with reconnects and bad lines recorded, not fatal; and
//! HTTP sinks, `CREATE EXTERNAL TABLE ... STORED AS NDJSON LOCATION 'http://...'`
//! written with `INSERT INTO`, that POST batches of records and lose none.

mod factory;
mod ndjson;
mod sink;
mod source;

pub use factory::NdjsonTableFactory;
pub use sink::{HttpSink, SinkOptions, sink_table};
pub use source::{
    INFER_RECORDS, INFER_WAIT, Location, NdjsonSource, Observers, Primed, SourceOptions, infer,
};
