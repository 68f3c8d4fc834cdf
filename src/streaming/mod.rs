//! Unbounded NDJSON streams as tables: `CREATE UNBOUNDED EXTERNAL TABLE ... STORED AS
//! NDJSON LOCATION 'http://...'` (also `https://`, `ws://`, `wss://`, `/dev/stdin`),
//! read as each line arrives, with reconnects and bad lines recorded, not fatal.

mod factory;
mod ndjson;
mod source;

pub use factory::NdjsonTableFactory;
pub use source::{Location, NdjsonSource, Observers, SourceOptions};
