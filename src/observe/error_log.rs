//! The log of rows whose AI call failed for good, kept per session and queryable as a
//! table: nothing fails silently, even with `blossom.on_error = 'null'`.
//!
//! ```sql
//! SET blossom.on_error = 'null';
//! SELECT id, sentiment(text) FROM 'data/reviews.csv';
//! SELECT function, error_class, status, attempts, input FROM blossom_errors();
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray, UInt16Array, UInt32Array,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// Rows kept; the oldest are dropped first.
const CAPACITY: usize = 100_000;

/// One row whose call failed for good.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// The query it belongs to: the number of that query among the statements the
    /// session has planned, from 1.
    pub query_id: u64,
    /// The AI function called.
    pub function: String,
    /// The start of the row's input.
    pub input: String,
    /// `server_error`, `rate_limited`, `timeout`, `connect`, `client_error`,
    /// `invalid_answer`, ...
    pub error_class: String,
    /// The provider's HTTP status, when it answered with one.
    pub status: Option<u16>,
    /// What went wrong, in words.
    pub message: String,
    /// Requests made for it, when it failed at the provider.
    pub attempts: Option<u32>,
    /// When it failed, in milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
}

/// The failed rows of a session.
#[derive(Debug, Default)]
pub struct ErrorLog {
    rows: Mutex<VecDeque<RowError>>,
}

impl ErrorLog {
    /// Records one failed row.
    pub fn record(&self, error: RowError) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if rows.len() >= CAPACITY {
            rows.pop_front();
        }
        rows.push_back(error);
    }

    /// The failed rows so far, oldest first.
    pub fn rows(&self) -> Vec<RowError> {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("query_id", DataType::UInt64, false),
            Field::new("function", DataType::Utf8, false),
            Field::new("input", DataType::Utf8, false),
            Field::new("error_class", DataType::Utf8, false),
            Field::new("status", DataType::UInt16, true),
            Field::new("message", DataType::Utf8, false),
            Field::new("attempts", DataType::UInt32, true),
            Field::new(
                "failed_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ]))
    }

    fn batch(&self) -> Result<RecordBatch> {
        let rows = self.rows();
        let text = |f: fn(&RowError) -> &str| {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.query_id),
            )),
            text(|r| &r.function),
            text(|r| &r.input),
            text(|r| &r.error_class),
            Arc::new(UInt16Array::from_iter(rows.iter().map(|r| r.status))),
            text(|r| &r.message),
            Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.attempts))),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.at_unix_ms))
                    .with_timezone("UTC"),
            ),
        ];
        Ok(RecordBatch::try_new(Self::schema(), columns)?)
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `blossom_errors()`: the session's failed rows as a table.
///
/// ```sql
/// SELECT error_class, count(*) FROM blossom_errors() GROUP BY error_class;
/// ```
#[derive(Debug)]
pub struct ErrorsTable {
    log: Arc<ErrorLog>,
}

impl ErrorsTable {
    /// The table function over `log`.
    pub fn new(log: Arc<ErrorLog>) -> Self {
        Self { log }
    }
}

impl TableFunctionImpl for ErrorsTable {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("blossom_errors() takes no arguments");
        }
        let batch = self.log.batch()?;
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}

/// The error log of a session made by [`crate::BlossomSessionBuilder`].
pub fn error_log(ctx: &SessionContext) -> Option<Arc<ErrorLog>> {
    ctx.state().config().get_extension::<ErrorLog>()
}
