//! [`NdjsonTableFactory`]: `CREATE UNBOUNDED EXTERNAL TABLE ... STORED AS NDJSON` with a
//! stream's location (`http(s)://`, `ws(s)://`, `/dev/stdin`) makes a streaming source;
//! `CREATE EXTERNAL TABLE ... STORED AS NDJSON` with an `http(s)://` location makes an
//! HTTP sink, written with `INSERT INTO`; any other location is left to DataFusion's
//! own factory, unchanged.
//!
//! ```sql
//! CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR, sent_at DOUBLE)
//!   STORED AS NDJSON LOCATION 'ws://127.0.0.1:9001/events';
//! CREATE EXTERNAL TABLE scored (id BIGINT, s VARCHAR)
//!   STORED AS NDJSON LOCATION 'http://127.0.0.1:9000/sink';
//! INSERT INTO scored SELECT id, sentiment(text) AS s FROM events;
//! CREATE EXTERNAL TABLE logs STORED AS NDJSON LOCATION 'data/logs.json';  -- DataFusion's
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::CreateExternalTable;

use super::sink::sink_table;
use super::source::{Location, NdjsonSource, Observers, SourceOptions, infer};
use crate::observe::{ErrorLog, StreamStats};

/// Makes streaming NDJSON tables, and hands other `NDJSON` tables to `fallback`.
#[derive(Debug)]
pub struct NdjsonTableFactory {
    fallback: Arc<dyn TableProviderFactory>,
}

impl NdjsonTableFactory {
    /// A factory handing tables that are not streams to `fallback` (DataFusion's).
    pub fn new(fallback: Arc<dyn TableProviderFactory>) -> Self {
        Self { fallback }
    }
}

#[async_trait]
impl TableProviderFactory for NdjsonTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let [location] = cmd.locations.as_slice() else {
            return self.fallback.create(state, cmd).await;
        };
        let Some(location) = Location::parse(location) else {
            return self.fallback.create(state, cmd).await;
        };
        if let Location::Http(url) | Location::WebSocket(url) = &location
            && reqwest::Url::parse(url)
                .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            return plan_err!(
                "CREATE EXTERNAL TABLE {}: credentials in a stream's URL are refused, since the \
                 URL shows in errors and logs; send them as a header read from the environment: \
                 OPTIONS ('header.authorization' 'env:VARIABLE')",
                cmd.name
            );
        }
        let stats = state.config().get_extension::<StreamStats>();
        if !cmd.unbounded {
            // A bounded table at an HTTP(S) URL is a sink, written with INSERT INTO.
            return match &location {
                Location::Http(url) => {
                    let schema = Arc::new(cmd.schema.as_arrow().clone());
                    if schema.fields().is_empty() {
                        return plan_err!(
                            "CREATE EXTERNAL TABLE {}: an HTTP sink's columns must be declared, \
                             e.g. (id BIGINT, s VARCHAR)",
                            cmd.name
                        );
                    }
                    sink_table(schema, url, &cmd.options, stats)
                }
                Location::WebSocket(_) | Location::Stdin => plan_err!(
                    "CREATE EXTERNAL TABLE {} reads the stream {location}: write CREATE \
                     UNBOUNDED EXTERNAL TABLE, since it has no end known in advance",
                    cmd.name
                ),
            };
        }
        let options = SourceOptions::parse(&cmd.options)?;
        let declared: Schema = cmd.schema.as_arrow().clone();
        // Columns left out are inferred from the first records, which the first scan
        // still reads.
        let (schema, primed) = if declared.fields().is_empty() {
            let (schema, primed) = infer(&location, &options).await?;
            (schema.as_ref().clone(), Some(primed))
        } else {
            (declared, None)
        };
        let observers = Observers {
            errors: state.config().get_extension::<ErrorLog>(),
            stats,
        };
        let mut source =
            NdjsonSource::try_new(Arc::new(schema.clone()), location, options, observers)?;
        if let Some(primed) = primed {
            source = source.with_primed(primed);
        }
        let table = StreamingTable::try_new(Arc::new(schema), vec![Arc::new(source)])?
            .with_infinite_table(true);
        Ok(Arc::new(table))
    }
}
