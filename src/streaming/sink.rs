//! The HTTP sink: `INSERT INTO` a table whose `LOCATION` is an `http://` or `https://`
//! URL POSTs the rows as NDJSON batches, each bounded by a record count (`batch_rows`)
//! and by how long its oldest record may wait (`batch_ms`).
//!
//! ```sql
//! CREATE EXTERNAL TABLE scored (id BIGINT, s VARCHAR) STORED AS NDJSON
//!   LOCATION 'http://127.0.0.1:9000/sink'
//!   OPTIONS ('batch_rows' '100', 'dead_letter' 'refused.ndjson',
//!            'header.authorization' 'env:SINK_TOKEN');
//! INSERT INTO scored SELECT id, sentiment(text) FROM events;
//! ```
//!
//! Nothing is lost: a batch answered 5xx, 408 or 429 (after its `Retry-After`), or met
//! with a connection error, is sent again with backoff, and while it is retried no more
//! input is read (at most the batch being sent, one batch filling and the rest of the
//! input `RecordBatch` last read are held), so a slow sink slows the source. A batch the
//! sink refuses for good (another 4xx, or retries exhausted) goes to the `dead_letter`
//! file, one line per record with the reason; without that option the `INSERT` fails
//! with the URL, the status and how many records were not delivered. Every record read
//! is either delivered or in the dead-letter file.
//!
//! Header values come only from the environment (`env:VAR`), are read when the `INSERT`
//! runs, and never appear in the plan, in errors, in logs or in `Debug` output.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::writer::{LineDelimited, WriterBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result, SchemaExt, not_impl_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::error_class::error_chain;
use crate::observe::StreamStats;
use crate::provider::parse_retry_after;
use crate::redact::scrub;

/// The `OPTIONS` keys an HTTP sink knows (besides `header.<name>`).
const KNOWN: &[&str] = &[
    "batch_rows",
    "batch_ms",
    "max_retries",
    "retry_initial_ms",
    "retry_max_ms",
    "dead_letter",
    "header.<name>",
];

/// How long one POST may take before it counts as a connection error and is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a refusing answer's body an error or a dead-letter line quotes.
const BODY_EXCERPT_CHARS: usize = 200;

/// The settings of one HTTP sink, from its table's `OPTIONS`.
///
/// Header values are not here: only the names of the environment variables that hold
/// them, read when the sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// Records per POST at most (`batch_rows`, default 500).
    pub batch_rows: usize,
    /// The longest a record waits before its batch is POSTed (`batch_ms`, default 20:
    /// a row reaches the sink within 50 ms of its answer, see `benches/streaming.rs`).
    pub batch_wait: Duration,
    /// Retries of one batch after its first attempt (`max_retries`, default 8).
    pub max_retries: u32,
    /// The first backoff (`retry_initial_ms`, default 100), doubled per retry.
    pub retry_initial: Duration,
    /// The longest backoff (`retry_max_ms`, default 10000).
    pub retry_max: Duration,
    /// Where records refused for good are appended (`dead_letter`).
    pub dead_letter: Option<String>,
    /// Header name to the environment variable holding its value (`header.<name>`).
    pub headers: BTreeMap<String, String>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            batch_rows: 500,
            batch_wait: Duration::from_millis(20),
            max_retries: 8,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(10_000),
            dead_letter: None,
            headers: BTreeMap::new(),
        }
    }
}

impl SinkOptions {
    /// Reads a sink table's `OPTIONS`. Keys may come lower-cased and prefixed with
    /// `format.` (as DataFusion hands them over); both spellings are accepted. An
    /// unknown key, a bad number or a header given in plain text is refused with an
    /// error naming the option.
    pub fn parse(options: &HashMap<String, String>) -> Result<SinkOptions> {
        let mut parsed = SinkOptions::default();
        let mut retry_max_set = false;
        // Sorted, so that with several faults the error is always about the same one.
        let mut entries: Vec<(&String, &String)> = options.iter().collect();
        entries.sort();
        for (raw_key, value) in entries {
            let key = raw_key.to_ascii_lowercase();
            let key = key.strip_prefix("format.").unwrap_or(&key);
            match key {
                "batch_rows" => {
                    parsed.batch_rows = number(raw_key, value)?;
                    if parsed.batch_rows == 0 {
                        return plan_err!(
                            "HTTP sink option '{raw_key}' must be at least 1, not {value}"
                        );
                    }
                }
                "batch_ms" => parsed.batch_wait = Duration::from_millis(number(raw_key, value)?),
                "max_retries" => parsed.max_retries = number(raw_key, value)?,
                "retry_initial_ms" => {
                    parsed.retry_initial = Duration::from_millis(number(raw_key, value)?)
                }
                "retry_max_ms" => {
                    parsed.retry_max = Duration::from_millis(number(raw_key, value)?);
                    retry_max_set = true;
                }
                "dead_letter" => {
                    if value.trim().is_empty() {
                        return plan_err!("HTTP sink option '{raw_key}' needs a file path");
                    }
                    parsed.dead_letter = Some(value.clone());
                }
                _ => {
                    let Some(name) = key.strip_prefix("header.") else {
                        return plan_err!(
                            "unknown HTTP sink option '{raw_key}'; the known ones are {}",
                            KNOWN.join(", ")
                        );
                    };
                    if HeaderName::from_str(name).is_err() || name.is_empty() {
                        return plan_err!(
                            "HTTP sink option '{raw_key}': '{name}' is not a valid header name"
                        );
                    }
                    // The value is never quoted: it may be the secret itself.
                    let Some(var) = value.trim().strip_prefix("env:") else {
                        return plan_err!(
                            "HTTP sink option '{raw_key}' must be 'env:VARIABLE' (the header \
                             value is read from that environment variable, so that a secret \
                             is never stored in the plan); a plain-text value is refused"
                        );
                    };
                    let var = var.trim();
                    if var.is_empty() || var.contains('=') || var.contains('\0') {
                        return plan_err!(
                            "HTTP sink option '{raw_key}' must name an environment variable \
                             after 'env:'"
                        );
                    }
                    parsed.headers.insert(name.to_string(), var.to_string());
                }
            }
        }
        if parsed.retry_max < parsed.retry_initial {
            if retry_max_set {
                return plan_err!(
                    "HTTP sink option 'retry_max_ms' ({} ms) is below 'retry_initial_ms' ({} ms)",
                    parsed.retry_max.as_millis(),
                    parsed.retry_initial.as_millis()
                );
            }
            parsed.retry_max = parsed.retry_initial;
        }
        Ok(parsed)
    }

    /// The wait before retry number `retry` (1 for the first): `retry_initial` doubled
    /// per retry, capped at `retry_max`, then jittered to between half and all of it.
    fn backoff(&self, retry: u32) -> Duration {
        let doubled = self
            .retry_initial
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)));
        let capped = doubled.min(self.retry_max);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

fn number<T: FromStr>(key: &str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| {
        DataFusionError::Plan(format!(
            "HTTP sink option '{key}' must be a whole number at least 0, not '{value}'"
        ))
    })
}

/// The table `CREATE EXTERNAL TABLE ... LOCATION 'http://...'` makes: it can only be
/// written (`INSERT INTO`), each write POSTing to `url` through an [`HttpSink`].
pub fn sink_table(
    schema: SchemaRef,
    url: &str,
    options: &HashMap<String, String>,
    stats: Option<Arc<StreamStats>>,
) -> Result<Arc<dyn TableProvider>> {
    let sink = HttpSink::try_new(schema, url, SinkOptions::parse(options)?)?.with_stats(stats);
    Ok(Arc::new(HttpSinkTable {
        sink: Arc::new(sink),
    }))
}

#[derive(Debug)]
struct HttpSinkTable {
    sink: Arc<HttpSink>,
}

#[async_trait]
impl TableProvider for HttpSinkTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.sink.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan_err!(
            "the HTTP sink {} can only be written, with INSERT INTO",
            self.sink.url
        )
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!(
                "{insert_op} into the HTTP sink {}: records can only be appended (INSERT INTO)",
                self.sink.url
            );
        }
        self.sink
            .schema
            .logically_equivalent_names_and_types(&input.schema())?;
        let sink: Arc<dyn DataSink> = Arc::clone(&self.sink) as _;
        Ok(Arc::new(DataSinkExec::new(input, sink, None)))
    }
}

/// A [`DataSink`] that POSTs records as NDJSON batches to one URL; see the module docs.
pub struct HttpSink {
    schema: SchemaRef,
    url: Url,
    options: SinkOptions,
    /// The session's streaming counters: records delivered, dead-lettered, retries.
    stats: Option<Arc<StreamStats>>,
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only names of environment variables, never header values.
        f.debug_struct("HttpSink")
            .field("url", &self.url.as_str())
            .field("options", &self.options)
            .finish()
    }
}

impl DisplayAs for HttpSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HttpSink(url={}, batch_rows={}, batch_ms={}",
            self.url,
            self.options.batch_rows,
            self.options.batch_wait.as_millis()
        )?;
        if let Some(path) = &self.options.dead_letter {
            write!(f, ", dead_letter={path}")?;
        }
        write!(f, ")")
    }
}

impl HttpSink {
    /// A sink POSTing to `url` (`http://` or `https://`). A URL with a password in it is
    /// refused: credentials belong in a `header.<name>` option read from the environment.
    pub fn try_new(schema: SchemaRef, url: &str, options: SinkOptions) -> Result<HttpSink> {
        let parsed = Url::parse(url)
            .map_err(|e| DataFusionError::Plan(format!("the HTTP sink URL is not valid: {e}")))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return plan_err!(
                "an HTTP sink needs an http:// or https:// URL, not a {}:// one",
                parsed.scheme()
            );
        }
        if parsed.password().is_some() || !parsed.username().is_empty() {
            return plan_err!(
                "the HTTP sink URL has credentials in it; put them in a header instead, \
                 OPTIONS ('header.authorization' 'env:VARIABLE')"
            );
        }
        Ok(HttpSink {
            schema,
            url: parsed,
            options,
            stats: None,
        })
    }

    /// The same sink, counting what it delivers in the session's streaming counters.
    pub fn with_stats(mut self, stats: Option<Arc<StreamStats>>) -> Self {
        self.stats = stats;
        self
    }

    /// The URL records are POSTed to.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The sink's settings.
    pub fn options(&self) -> &SinkOptions {
        &self.options
    }

    /// The headers of every POST, their values read from the environment now, and the
    /// values themselves (to scrub them from any text that quotes an answer).
    fn headers(&self) -> Result<(HeaderMap, Vec<String>)> {
        let mut map = HeaderMap::new();
        let mut secrets = Vec::new();
        map.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        for (name, var) in &self.options.headers {
            let value = std::env::var(var).map_err(|_| {
                DataFusionError::Execution(format!(
                    "HTTP sink option 'header.{name}': the environment variable {var} is not \
                     set (or not valid Unicode)"
                ))
            })?;
            let mut header = HeaderValue::from_str(&value).map_err(|_| {
                DataFusionError::Execution(format!(
                    "HTTP sink option 'header.{name}': the value of {var} is not a valid \
                     header value"
                ))
            })?;
            header.set_sensitive(true);
            let name = HeaderName::from_str(name).map_err(|_| {
                DataFusionError::Execution(format!(
                    "HTTP sink option 'header.{name}' is not a valid header name"
                ))
            })?;
            map.insert(name, header);
            secrets.push(value);
        }
        Ok((map, secrets))
    }
}

/// What became of one batch.
enum Outcome {
    Delivered,
    /// Refused for good: the status (none for a connection error) and why.
    Refused {
        status: Option<u16>,
        reason: String,
    },
}

/// One record waiting to be sent: its NDJSON line (without the newline) and when it
/// was read.
struct Pending {
    line: Vec<u8>,
    read_at: Instant,
}

/// Everything a POST needs, shared by the batches of one `write_all`.
struct Poster {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    secrets: Vec<String>,
    options: SinkOptions,
    stats: Option<Arc<StreamStats>>,
}

impl Poster {
    /// `text` with every header value replaced by `<redacted>`.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            text = scrub(&text, Some(secret)).into_owned();
        }
        scrub(&text, None).into_owned()
    }

    /// POSTs `body` (`records` NDJSON lines) until it is accepted, refused for good, or
    /// its retries are spent.
    async fn deliver(&self, body: bytes::Bytes, records: usize) -> Outcome {
        let mut retry = 0u32;
        loop {
            let attempt = self
                .client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .body(body.clone())
                .send()
                .await;
            let (status, reason, wait) = match attempt {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        return Outcome::Delivered;
                    }
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let text = response.text().await.unwrap_or_default();
                    let reason = format!("HTTP {status}{}", excerpt(&self.scrub(&text)));
                    if !retryable(status) {
                        return Outcome::Refused {
                            status: Some(status.as_u16()),
                            reason,
                        };
                    }
                    // Honoured as asked (up to 10 minutes), not capped by `retry_max_ms`.
                    let asked = parse_retry_after(retry_after.as_deref(), "");
                    (Some(status.as_u16()), reason, asked)
                }
                Err(error) => {
                    // reqwest's error text names the URL and the cause, never headers.
                    let reason = self.scrub(&error_chain(&error));
                    (None, reason, None)
                }
            };
            if retry >= self.options.max_retries {
                let reason = if self.options.max_retries == 0 {
                    reason
                } else {
                    format!("{reason} (after {} retries)", self.options.max_retries)
                };
                return Outcome::Refused { status, reason };
            }
            retry += 1;
            if let Some(stats) = &self.stats {
                stats.sink_retried();
            }
            let wait = wait.unwrap_or_else(|| self.options.backoff(retry));
            tracing::warn!(
                url = %self.url,
                status = status.map(|s| s.to_string()).unwrap_or_else(|| "connection error".into()),
                attempt = retry + 1,
                max_attempts = self.options.max_retries + 1,
                records,
                wait_ms = wait.as_millis() as u64,
                reason = %reason,
                "HTTP sink: retrying a batch"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// `: <the first characters of body>`, or nothing for an empty body.
fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let mut cut: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
    if cut.len() < body.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

/// A batch being POSTed, as a future the write loop polls beside its input.
type Sending = std::pin::Pin<Box<dyn Future<Output = (Vec<Pending>, Outcome)> + Send>>;

/// The running totals of one `write_all`.
#[derive(Default)]
struct Totals {
    read: u64,
    delivered: u64,
    dead_lettered: u64,
}

#[async_trait]
impl DataSink for HttpSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let (headers, secrets) = self.headers()?;
        // A redirect would turn the POST into a body-less GET whose 2xx is no delivery.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| DataFusionError::Execution(format!("the HTTP sink {}: {e}", self.url)))?;
        let poster = Arc::new(Poster {
            client,
            url: self.url.clone(),
            headers,
            secrets,
            options: self.options.clone(),
            stats: self.stats.clone(),
        });
        let batch_rows = self.options.batch_rows;
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut sending: Option<Sending> = None;
        let mut input_done = false;
        let mut input_error: Option<DataFusionError> = None;
        let mut totals = Totals::default();

        loop {
            // Start a POST when none is in flight and a batch is due: full, old enough,
            // or the input has ended.
            if sending.is_none() && !pending.is_empty() {
                let oldest = pending.front().map(|p| p.read_at);
                let due = pending.len() >= batch_rows
                    || input_done
                    || oldest.is_some_and(|t| t + self.options.batch_wait <= Instant::now());
                if due {
                    let take = pending.len().min(batch_rows);
                    let batch: Vec<Pending> = pending.drain(..take).collect();
                    let poster = Arc::clone(&poster);
                    sending = Some(Box::pin(async move {
                        let body = body_of(&batch);
                        let outcome = poster.deliver(body, batch.len()).await;
                        (batch, outcome)
                    }));
                }
            }
            if sending.is_none() && pending.is_empty() && input_done {
                break;
            }
            let deadline = pending.front().map(|p| p.read_at + self.options.batch_wait);
            // Read more only while fewer than a batch of records wait: with a POST in
            // flight (and retrying), the source is not read past one more batch.
            let may_read = !input_done && pending.len() < batch_rows;
            tokio::select! {
                done = async { sending.as_mut().expect("guarded").await }, if sending.is_some() => {
                    sending = None;
                    let (batch, outcome) = done;
                    match outcome {
                        Outcome::Delivered => {
                            totals.delivered += batch.len() as u64;
                            if let Some(stats) = &self.stats {
                                stats.delivered(batch.len() as u64);
                            }
                        }
                        Outcome::Refused { status, reason } => {
                            self.refused(&batch, status, &reason, &pending, &totals).await?;
                            totals.dead_lettered += batch.len() as u64;
                            if let Some(stats) = &self.stats {
                                stats.dead_lettered(batch.len() as u64);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if sending.is_none() && deadline.is_some() && !input_done => {
                    // The oldest record's wait is over; the top of the loop sends it.
                }
                next = data.next(), if may_read => match next {
                    Some(Ok(batch)) => {
                        let lines = lines_of(&batch)?;
                        totals.read += lines.len() as u64;
                        let now = Instant::now();
                        pending.extend(lines.into_iter().map(|line| Pending { line, read_at: now }));
                    }
                    Some(Err(error)) => {
                        // Deliver what was read, then report the input's error.
                        input_error = Some(error);
                        input_done = true;
                    }
                    None => input_done = true,
                },
            }
        }
        tracing::debug!(
            url = %self.url,
            read = totals.read,
            delivered = totals.delivered,
            dead_lettered = totals.dead_lettered,
            "HTTP sink: input finished"
        );
        match input_error {
            Some(error) => Err(error),
            None => Ok(totals.delivered),
        }
    }
}

impl HttpSink {
    /// A batch refused for good: its records go to the dead-letter file, or, without
    /// one, the `INSERT` fails saying how many records were not delivered.
    async fn refused(
        &self,
        batch: &[Pending],
        status: Option<u16>,
        reason: &str,
        pending: &VecDeque<Pending>,
        totals: &Totals,
    ) -> Result<()> {
        let status_text = status
            .map(|s| format!("status {s}"))
            .unwrap_or_else(|| "no answer".to_string());
        let Some(path) = &self.options.dead_letter else {
            let lost = batch.len() + pending.len();
            return Err(DataFusionError::Execution(format!(
                "the HTTP sink {} refused a batch of {} records ({status_text}): {reason}; \
                 {lost} records read were not delivered ({} delivered before); set OPTIONS \
                 ('dead_letter' 'PATH') to keep refused records and go on",
                self.url,
                batch.len(),
                totals.delivered
            )));
        };
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let error = serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".to_string());
        let status_json = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "null".to_string());
        let mut text = Vec::new();
        for record in batch {
            text.extend_from_slice(b"{\"record\":");
            text.extend_from_slice(&record.line);
            text.extend_from_slice(
                format!(
                    ",\"error\":{error},\"status\":{status_json},\"at_unix_ms\":{at_unix_ms}}}\n"
                )
                .as_bytes(),
            );
        }
        let write = async {
            let parent = std::path::Path::new(path).parent();
            if let Some(parent) = parent.filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(parent).await?;
            }
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            file.write_all(&text).await?;
            file.flush().await?;
            file.sync_data().await
        };
        write.await.map_err(|e| {
            DataFusionError::Execution(format!(
                "the HTTP sink {} refused {} records ({status_text}) and they could not be \
                 written to the dead-letter file {path}: {e}",
                self.url,
                batch.len()
            ))
        })?;
        tracing::warn!(
            url = %self.url,
            status = %status_text,
            records = batch.len(),
            dead_letter = %path,
            "HTTP sink: records refused for good, written to the dead-letter file"
        );
        Ok(())
    }
}

/// The records of `batch` as NDJSON lines, without their newlines.
fn lines_of(batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let mut buffer = Vec::new();
    {
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(&mut buffer);
        writer.write(batch)?;
        writer.finish()?;
    }
    // JSON escapes newlines inside strings, so each '\n' ends one record.
    Ok(buffer
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The POST body of a batch: its lines, each ended by a newline.
fn body_of(batch: &[Pending]) -> bytes::Bytes {
    let mut body = Vec::with_capacity(batch.iter().map(|p| p.line.len() + 1).sum());
    for record in batch {
        body.extend_from_slice(&record.line);
        body.push(b'\n');
    }
    body.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        SinkOptions::parse(&options(pairs))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn defaults_without_options() {
        let parsed = SinkOptions::parse(&HashMap::new()).expect("parses");
        assert_eq!(parsed, SinkOptions::default());
        assert_eq!(parsed.batch_rows, 500);
        assert_eq!(parsed.batch_wait, Duration::from_millis(20));
        assert_eq!(parsed.max_retries, 8);
        assert_eq!(parsed.retry_initial, Duration::from_millis(100));
        assert_eq!(parsed.retry_max, Duration::from_millis(10_000));
    }

    #[test]
    fn reads_every_option_with_or_without_the_format_prefix() {
        let parsed = SinkOptions::parse(&options(&[
            ("batch_rows", "10"),
            ("format.batch_ms", "50"),
            ("FORMAT.MAX_RETRIES", "3"),
            ("retry_initial_ms", "5"),
            ("format.retry_max_ms", "40"),
            ("dead_letter", "/tmp/dl.ndjson"),
            ("format.header.authorization", "env:SINK_TOKEN"),
            ("header.x-tenant", "env: TENANT "),
        ]))
        .expect("parses");
        assert_eq!(parsed.batch_rows, 10);
        assert_eq!(parsed.batch_wait, Duration::from_millis(50));
        assert_eq!(parsed.max_retries, 3);
        assert_eq!(parsed.retry_initial, Duration::from_millis(5));
        assert_eq!(parsed.retry_max, Duration::from_millis(40));
        assert_eq!(parsed.dead_letter.as_deref(), Some("/tmp/dl.ndjson"));
        assert_eq!(
            parsed.headers,
            BTreeMap::from([
                ("authorization".to_string(), "SINK_TOKEN".to_string()),
                ("x-tenant".to_string(), "TENANT".to_string()),
            ])
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_the_known_ones() {
        let message = error(&[("batch_size", "10")]);
        assert!(message.contains("'batch_size'"), "{message}");
        for known in KNOWN {
            assert!(message.contains(known), "{message} lacks {known}");
        }
    }

    #[test]
    fn bad_numbers_name_the_option() {
        for (key, value) in [
            ("batch_rows", "ten"),
            ("batch_rows", "0"),
            ("batch_ms", "-1"),
            ("max_retries", "1.5"),
            ("format.retry_initial_ms", ""),
        ] {
            let message = error(&[(key, value)]);
            assert!(message.contains(&format!("'{key}'")), "{key}: {message}");
        }
        let message = error(&[("retry_initial_ms", "500"), ("retry_max_ms", "100")]);
        assert!(message.contains("'retry_max_ms'"), "{message}");
    }

    #[test]
    fn a_retry_initial_above_the_default_cap_lifts_the_cap() {
        let parsed = SinkOptions::parse(&options(&[("retry_initial_ms", "20000")])).unwrap();
        assert_eq!(parsed.retry_max, Duration::from_millis(20_000));
    }

    #[test]
    fn a_plain_text_header_is_refused_without_quoting_it() {
        let message = error(&[("header.authorization", "Bearer sk-plain-secret")]);
        assert!(message.contains("'header.authorization'"), "{message}");
        assert!(message.contains("env:"), "{message}");
        assert!(!message.contains("sk-plain-secret"), "{message}");
        let message = error(&[("header.authorization", "env:")]);
        assert!(message.contains("'header.authorization'"), "{message}");
        let message = error(&[("header.bad name", "env:X")]);
        assert!(message.contains("'header.bad name'"), "{message}");
        let message = error(&[("header.", "env:X")]);
        assert!(message.contains("'header.'"), "{message}");
    }

    #[test]
    fn dead_letter_needs_a_path() {
        let message = error(&[("dead_letter", " ")]);
        assert!(message.contains("'dead_letter'"), "{message}");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_half() {
        let parsed = SinkOptions::parse(&options(&[
            ("retry_initial_ms", "100"),
            ("retry_max_ms", "1000"),
        ]))
        .unwrap();
        for _ in 0..50 {
            let first = parsed.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = parsed.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = parsed.backoff(40);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn urls_with_credentials_or_other_schemes_are_refused() {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let err = HttpSink::try_new(
            Arc::clone(&schema),
            "http://user:hunter2@127.0.0.1/sink",
            SinkOptions::default(),
        )
        .expect_err("refused")
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("header"), "{err}");
        let err = HttpSink::try_new(schema, "ftp://127.0.0.1/x", SinkOptions::default())
            .expect_err("refused")
            .to_string();
        assert!(err.contains("ftp"), "{err}");
    }

    #[test]
    fn debug_shows_variable_names_not_values() {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let parsed =
            SinkOptions::parse(&options(&[("header.authorization", "env:SINK_UNIT_TOKEN")]))
                .unwrap();
        let sink = HttpSink::try_new(schema, "http://127.0.0.1:1/sink", parsed).unwrap();
        let debug = format!("{sink:?}");
        assert!(debug.contains("SINK_UNIT_TOKEN"), "{debug}");
        assert!(debug.contains("127.0.0.1:1/sink"), "{debug}");
    }

    #[test]
    fn lines_are_one_record_each_with_explicit_nulls() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a\nb"), None])),
            ],
        )
        .unwrap();
        let lines: Vec<String> = lines_of(&batch)
            .unwrap()
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![r#"{"id":1,"s":"a\nb"}"#, r#"{"id":2,"s":null}"#]
        );
    }
}
