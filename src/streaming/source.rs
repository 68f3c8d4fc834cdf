//! [`NdjsonSource`]: the rows of an unbounded NDJSON stream, read from an HTTP(S)
//! response body (chunked or not), a WebSocket's text messages, or standard input, and
//! decoded as each line arrives ([`super::ndjson`]).
//!
//! ```sql
//! CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR, sent_at DOUBLE)
//!   STORED AS NDJSON LOCATION 'http://127.0.0.1:9000/stream';
//! SELECT id, sentiment(text) FROM events WHERE text <> '';
//! ```
//!
//! The reader runs apart from the query and hands bytes over a small bounded channel:
//! when the query takes rows more slowly than they come (a slow provider), the channel
//! fills, the reader stops reading, and the connection's own flow control holds the
//! sender back. Memory stays bounded by the channel and the rows in flight.
//!
//! A connection that fails or drops before the source ends its stream is made again
//! with backoff (`reconnect_max` attempts in a row; each one that delivers data resets
//! the count). What a reconnect replays is the server's business: records seen again
//! are asked again, and the response cache answers them without paying twice. An HTTP
//! response that ends normally, a WebSocket closed by the server, or the end of standard
//! input ends the table; so does the session's stop signal (`StreamStats::stop_sources`,
//! the CLI's Ctrl-C), so that the rows read are answered and a sink flushed.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::ndjson::{BadLine, BadLines, Chunk, records};
use crate::error_class::ErrorClass;
use crate::observe::error_log::now_unix_ms;
use crate::observe::{ErrorLog, RowError, StreamStats};

/// Chunks of bytes read ahead of the query, at most.
const CHANNEL_CHUNKS: usize = 16;

/// How much of a bad line `blossom_errors()` shows.
const LINE_EXCERPT_CHARS: usize = 120;

/// Where a stream comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An `http://` or `https://` URL answering with an NDJSON body.
    Http(String),
    /// A `ws://` or `wss://` URL sending NDJSON text messages.
    WebSocket(String),
    /// `/dev/stdin`: the process's standard input.
    Stdin,
}

impl Location {
    /// The location of a stream, or `None` for one that is not (a file path, an object
    /// store URL), which DataFusion's own tables read.
    pub fn parse(location: &str) -> Option<Self> {
        let lower = location.trim().to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Some(Self::Http(location.trim().to_string()))
        } else if lower.starts_with("ws://") || lower.starts_with("wss://") {
            Some(Self::WebSocket(location.trim().to_string()))
        } else if lower == "/dev/stdin" || lower == "-" {
            Some(Self::Stdin)
        } else {
            None
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) | Self::WebSocket(url) => f.write_str(url),
            Self::Stdin => f.write_str("/dev/stdin"),
        }
    }
}

/// The `OPTIONS` of a streaming source.
///
/// ```sql
/// CREATE UNBOUNDED EXTERNAL TABLE events (id BIGINT, text VARCHAR)
/// STORED AS NDJSON LOCATION 'https://example.com/stream'
/// OPTIONS ('header.authorization' 'env:STREAM_TOKEN', 'dead_letter' 'bad-lines.ndjson',
///          'max_batch_rows' '256', 'reconnect_max' '20');
/// ```
#[derive(Clone, PartialEq)]
pub struct SourceOptions {
    /// Request headers, each value the name of the environment variable holding it.
    pub headers: Vec<(String, String)>,
    /// Most rows of one batch (a burst is cut in batches of this many).
    pub max_batch_rows: usize,
    /// Reconnection attempts in a row before the source fails; 0 never reconnects.
    pub reconnect_max: u32,
    /// The first wait before reconnecting; it doubles up to `reconnect_max_ms`.
    pub reconnect_initial: Duration,
    /// The longest wait before reconnecting.
    pub reconnect_longest: Duration,
    /// The file bad lines are appended to, as `{"line", "error", "at_unix_ms"}` objects.
    pub dead_letter: Option<PathBuf>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            headers: Vec::new(),
            max_batch_rows: 1024,
            reconnect_max: 10,
            reconnect_initial: Duration::from_millis(100),
            reconnect_longest: Duration::from_secs(10),
            dead_letter: None,
        }
    }
}

/// Header values are never shown: only the variables they come from.
impl fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceOptions")
            .field("headers", &self.headers)
            .field("max_batch_rows", &self.max_batch_rows)
            .field("reconnect_max", &self.reconnect_max)
            .field("dead_letter", &self.dead_letter)
            .finish_non_exhaustive()
    }
}

/// The keys a source's `OPTIONS` may have (besides `header.<name>`).
const SOURCE_KEYS: &[&str] = &[
    "max_batch_rows",
    "reconnect_max",
    "reconnect_initial_ms",
    "reconnect_max_ms",
    "dead_letter",
];

impl SourceOptions {
    /// The options of `CREATE UNBOUNDED EXTERNAL TABLE ... OPTIONS (...)`; keys may carry
    /// DataFusion's `format.` prefix. A header's value must be `env:VARIABLE`, so that
    /// no secret is written in the statement, the plan or the report.
    pub fn parse(options: &HashMap<String, String>) -> Result<Self> {
        let mut parsed = Self::default();
        let mut keys: Vec<(&String, &String)> = options.iter().collect();
        keys.sort();
        for (key, value) in keys {
            let key = key.strip_prefix("format.").unwrap_or(key);
            let number = |what: &str| -> Result<u64> {
                value.trim().parse::<u64>().map_err(|_| {
                    DataFusionError::Plan(format!("OPTIONS '{key}' must be {what}, got '{value}'"))
                })
            };
            if let Some(name) = key.strip_prefix("header.") {
                parsed
                    .headers
                    .push((name.to_string(), env_reference(key, value)?));
                continue;
            }
            match key {
                "max_batch_rows" => match number("a positive whole number")? {
                    0 => return plan_err!("OPTIONS 'max_batch_rows' must be above 0"),
                    n => parsed.max_batch_rows = n as usize,
                },
                "reconnect_max" => {
                    parsed.reconnect_max =
                        u32::try_from(number("a whole number")?).map_err(|_| {
                            DataFusionError::Plan("OPTIONS 'reconnect_max' is too large".into())
                        })?;
                }
                "reconnect_initial_ms" => {
                    parsed.reconnect_initial =
                        Duration::from_millis(number("a whole number of milliseconds")?);
                }
                "reconnect_max_ms" => {
                    parsed.reconnect_longest =
                        Duration::from_millis(number("a whole number of milliseconds")?);
                }
                "dead_letter" => parsed.dead_letter = Some(PathBuf::from(value)),
                other => {
                    return plan_err!(
                        "OPTIONS '{other}' is not an option of a streaming source; they are \
                         {} and 'header.<name>' = 'env:VARIABLE'",
                        SOURCE_KEYS
                            .iter()
                            .map(|k| format!("'{k}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        Ok(parsed)
    }
}

/// The variable an `env:VARIABLE` option value names.
pub(crate) fn env_reference(key: &str, value: &str) -> Result<String> {
    match value.trim().strip_prefix("env:") {
        Some(var) if !var.trim().is_empty() => Ok(var.trim().to_string()),
        _ => plan_err!(
            "OPTIONS '{key}' must name an environment variable, as 'env:VARIABLE': a header \
             value written in the statement would be stored in the plan and the report"
        ),
    }
}

/// Where a source reports: the session's error log (`blossom_errors()`) and its
/// streaming counters.
#[derive(Debug, Clone, Default)]
pub struct Observers {
    pub errors: Option<Arc<ErrorLog>>,
    pub stats: Option<Arc<StreamStats>>,
}

/// How many records a stream's columns are inferred from, when `CREATE` does not
/// declare them.
pub const INFER_RECORDS: usize = 100;

/// How long `CREATE` waits for those records before inferring from what came.
pub const INFER_WAIT: Duration = Duration::from_secs(5);

/// A connection opened by `CREATE` to infer the columns: the chunks read so far and
/// the rest of the stream, handed to the first scan so no record is lost.
pub struct Primed {
    read: Vec<Chunk>,
    rest: mpsc::Receiver<Chunk>,
}

/// The columns of the stream at `location`, inferred from its first [`INFER_RECORDS`]
/// records (or those that came within [`INFER_WAIT`]), and the open connection.
pub async fn infer(location: &Location, options: &SourceOptions) -> Result<(SchemaRef, Primed)> {
    let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = Reader {
        location: location.clone(),
        options: options.clone(),
        stats: None,
        tx,
    };
    tokio::spawn(reader.run());
    let mut read = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let deadline = tokio::time::Instant::now() + INFER_WAIT;
    let complete = |bytes: &[u8]| bytes.iter().filter(|b| **b == b'\n').count();
    while complete(&bytes) < INFER_RECORDS {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Chunk::Data(data))) => {
                bytes.extend_from_slice(&data);
                read.push(Chunk::Data(data));
            }
            Ok(Some(Chunk::Failed(error))) => return Err(error),
            Ok(Some(other)) => read.push(other),
            Ok(None) | Err(_) => break,
        }
    }
    let values: Vec<serde_json::Value> = bytes
        .split(|b| *b == b'\n')
        .take(INFER_RECORDS)
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter(serde_json::Value::is_object)
        .collect();
    if values.is_empty() {
        return plan_err!(
            "the columns of {location} cannot be inferred: no record came within {} s; \
             declare them, e.g. (id BIGINT, text VARCHAR)",
            INFER_WAIT.as_secs()
        );
    }
    let schema = datafusion::arrow::json::reader::infer_json_schema_from_iterator(
        values
            .iter()
            .map(Ok::<_, datafusion::arrow::error::ArrowError>),
    )?;
    Ok((Arc::new(schema), Primed { read, rest: rx }))
}

/// One partition of an unbounded NDJSON table: each scan connects anew, but the first
/// one after columns were inferred, which reads on from `CREATE`'s connection.
pub struct NdjsonSource {
    schema: SchemaRef,
    location: Location,
    options: SourceOptions,
    observers: Observers,
    primed: Mutex<Option<Primed>>,
    /// Bad lines are appended here, in order.
    dead_letter: Option<Arc<Mutex<std::fs::File>>>,
}

impl fmt::Debug for NdjsonSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NdjsonSource")
            .field("location", &self.location)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl NdjsonSource {
    /// The source of `schema`'s records at `location`; bad lines are recorded in the
    /// error log (`blossom_errors()`) and the dead-letter file, which is opened (for
    /// appending) now, so that a path that cannot be written fails `CREATE`.
    pub fn try_new(
        schema: SchemaRef,
        location: Location,
        options: SourceOptions,
        observers: Observers,
    ) -> Result<Self> {
        let dead_letter = match &options.dead_letter {
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DataFusionError::Plan(format!(
                            "OPTIONS 'dead_letter': the directory {} cannot be made: {e}",
                            parent.display()
                        ))
                    })?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        DataFusionError::Plan(format!(
                            "OPTIONS 'dead_letter': {} cannot be opened for appending: {e}",
                            path.display()
                        ))
                    })?;
                Some(Arc::new(Mutex::new(file)))
            }
            None => None,
        };
        Ok(Self {
            schema,
            location,
            options,
            observers,
            primed: Mutex::new(None),
            dead_letter,
        })
    }

    /// The same source, its first scan reading on from `primed`.
    pub fn with_primed(self, primed: Primed) -> Self {
        *self.primed.lock().unwrap_or_else(|p| p.into_inner()) = Some(primed);
        self
    }

    /// Where this source's bad lines go.
    fn bad_lines(&self) -> BadLines {
        let errors = self.observers.errors.clone();
        let stats = self.observers.stats.clone();
        let dead_letter = self.dead_letter.clone();
        let location = self.location.to_string();
        Arc::new(move |bad: BadLine| {
            tracing::warn!("{location}: a line is skipped: {}", bad.why);
            if let Some(stats) = &stats {
                stats.malformed();
            }
            if let Some(errors) = &errors {
                errors.record(RowError {
                    query_id: 0,
                    function: "ndjson source".to_string(),
                    input: crate::provider::truncate_chars(&bad.line, LINE_EXCERPT_CHARS),
                    error_class: ErrorClass::MalformedRecord.as_str().to_string(),
                    status: None,
                    message: format!("{location}: {}", bad.why),
                    attempts: None,
                    at_unix_ms: now_unix_ms(),
                });
            }
            if let Some(file) = &dead_letter {
                let record = serde_json::json!({
                    "line": bad.line,
                    "error": bad.why,
                    "source": location,
                    "at_unix_ms": now_unix_ms(),
                });
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = writeln!(file, "{record}") {
                    tracing::error!("the dead-letter file could not be written: {e}");
                }
            }
        })
    }
}

impl PartitionStream for NdjsonSource {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let primed = self.primed.lock().unwrap_or_else(|p| p.into_inner()).take();
        match primed {
            // What CREATE read first, then the rest of its connection.
            Some(Primed { read, mut rest }) => {
                let stats = self.observers.stats.clone();
                tokio::spawn(async move {
                    for chunk in read {
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                    let stop = async {
                        match &stats {
                            Some(stats) => stats.sources_stop().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::pin!(stop);
                    loop {
                        let chunk = tokio::select! {
                            chunk = rest.recv() => chunk,
                            () = &mut stop => return,
                        };
                        let Some(chunk) = chunk else { return };
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
            None => {
                let reader = Reader {
                    location: self.location.clone(),
                    options: self.options.clone(),
                    stats: self.observers.stats.clone(),
                    tx,
                };
                tokio::spawn(reader.run());
            }
        }
        let stats = self.observers.stats.clone();
        let stream = records(
            Arc::clone(&self.schema),
            rx,
            self.options.max_batch_rows,
            self.bad_lines(),
        )
        .inspect(move |batch| {
            if let (Some(stats), Ok(batch)) = (&stats, batch) {
                stats.read(batch.num_rows() as u64);
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// Reads one scan's stream into the channel until the source ends, fails for good, or
/// the query stops listening.
struct Reader {
    location: Location,
    options: SourceOptions,
    stats: Option<Arc<StreamStats>>,
    tx: mpsc::Sender<Chunk>,
}

/// How one connection ended.
enum Ended {
    /// The source ended its stream: the table ends.
    Done,
    /// The query stopped listening.
    Dropped,
    /// The connection failed or dropped, having delivered data or not.
    Lost { error: String, delivered: bool },
    /// The source refused for good (a 4xx, a bad URL).
    Refused(String),
}

impl Reader {
    async fn run(self) {
        let mut failures = 0u32;
        let mut wait = self.options.reconnect_initial;
        let mut first = true;
        loop {
            if !first {
                if let Some(stats) = &self.stats {
                    stats.reconnected();
                }
                if self.tx.send(Chunk::Reconnected).await.is_err() {
                    return;
                }
            }
            first = false;
            let connection = async {
                match &self.location {
                    Location::Http(url) => self.http(url).await,
                    Location::WebSocket(url) => self.websocket(url).await,
                    Location::Stdin => self.stdin().await,
                }
            };
            // Asked to stop (Ctrl-C): the stream ends as if the source had ended it, so
            // the rows read are answered and the sink flushed.
            let ended = match &self.stats {
                Some(stats) => tokio::select! {
                    ended = connection => ended,
                    () = stats.sources_stop() => Ended::Done,
                },
                None => connection.await,
            };
            let error = match ended {
                Ended::Done | Ended::Dropped => return,
                Ended::Refused(why) => {
                    let _ = self
                        .tx
                        .send(Chunk::Failed(source_error(&self.location, &why)))
                        .await;
                    return;
                }
                Ended::Lost { error, delivered } => {
                    if delivered {
                        failures = 0;
                        wait = self.options.reconnect_initial;
                    }
                    error
                }
            };
            failures += 1;
            if failures > self.options.reconnect_max {
                let why = format!(
                    "{error}; gave up after {} reconnection attempts (OPTIONS 'reconnect_max')",
                    self.options.reconnect_max
                );
                let _ = self
                    .tx
                    .send(Chunk::Failed(source_error(&self.location, &why)))
                    .await;
                return;
            }
            tracing::warn!(
                "{}: {error}; reconnecting in {} ms (attempt {failures} of {})",
                self.location,
                wait.as_millis(),
                self.options.reconnect_max
            );
            let pause = tokio::time::sleep(jitter(wait));
            match &self.stats {
                Some(stats) => tokio::select! {
                    () = pause => {}
                    () = stats.sources_stop() => return,
                },
                None => pause.await,
            }
            wait = (wait * 2).min(self.options.reconnect_longest);
        }
    }

    /// Sends `bytes` on; `false` once the query stopped listening.
    async fn send(&self, bytes: Bytes) -> bool {
        self.tx.send(Chunk::Data(bytes)).await.is_ok()
    }

    async fn http(&self, url: &str) -> Ended {
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A half-open connection is noticed, and made again.
            .tcp_keepalive(Duration::from_secs(30))
            .build()
        {
            Ok(client) => client,
            Err(e) => return Ended::Refused(format!("no HTTP client: {e}")),
        };
        let mut request = client.get(url).header("accept", "application/x-ndjson");
        for (name, var) in &self.options.headers {
            match std::env::var(var) {
                Ok(value) => request = request.header(name.as_str(), value),
                Err(_) => {
                    return Ended::Refused(format!(
                        "the environment variable {var} (OPTIONS 'header.{name}') is not set"
                    ));
                }
            }
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Ended::Lost {
                    error: format!("cannot connect: {}", without_url(&e)),
                    delivered: false,
                };
            }
        };
        let status = response.status();
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            return Ended::Refused(format!("the source answered {status}"));
        }
        if !status.is_success() {
            return Ended::Lost {
                error: format!("the source answered {status}"),
                delivered: false,
            };
        }
        let mut delivered = false;
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    delivered = true;
                    if !self.send(bytes).await {
                        return Ended::Dropped;
                    }
                }
                Ok(None) => return Ended::Done,
                Err(e) => {
                    return Ended::Lost {
                        error: format!("the connection dropped: {}", without_url(&e)),
                        delivered,
                    };
                }
            }
        }
    }

    async fn websocket(&self, url: &str) -> Ended {
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let mut request = match url.into_client_request() {
            Ok(request) => request,
            Err(e) => return Ended::Refused(format!("not a WebSocket URL: {e}")),
        };
        for (name, var) in &self.options.headers {
            let value = match std::env::var(var) {
                Ok(value) => value,
                Err(_) => {
                    return Ended::Refused(format!(
                        "the environment variable {var} (OPTIONS 'header.{name}') is not set"
                    ));
                }
            };
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                (Ok(name), Ok(value)) => {
                    request.headers_mut().insert(name, value);
                }
                _ => {
                    return Ended::Refused(format!(
                        "OPTIONS 'header.{name}' is not a valid header name or value"
                    ));
                }
            }
        }
        let (mut socket, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(connected) => connected,
            Err(e) => {
                return Ended::Lost {
                    error: format!("cannot connect: {e}"),
                    delivered: false,
                };
            }
        };
        let mut delivered = false;
        while let Some(message) = socket.next().await {
            let bytes = match message {
                Ok(Message::Text(text)) => Bytes::from(text.as_str().to_string()),
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Close(_)) => return Ended::Done,
                Ok(Message::Ping(payload)) => {
                    let _ = socket.send(Message::Pong(payload)).await;
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    return Ended::Lost {
                        error: format!("the connection dropped: {e}"),
                        delivered,
                    };
                }
            };
            delivered = true;
            // A message is one or more whole lines.
            let mut line = bytes.to_vec();
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            if !self.send(Bytes::from(line)).await {
                return Ended::Dropped;
            }
        }
        Ended::Lost {
            error: "the connection closed without a close frame".to_string(),
            delivered,
        }
    }

    async fn stdin(&self) -> Ended {
        let mut stdin = tokio::io::stdin();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buffer).await {
                Ok(0) => return Ended::Done,
                Ok(n) => {
                    if !self.send(Bytes::copy_from_slice(&buffer[..n])).await {
                        return Ended::Dropped;
                    }
                }
                Err(e) => return Ended::Refused(format!("standard input cannot be read: {e}")),
            }
        }
    }
}

/// The error of a source that failed for good.
fn source_error(location: &Location, why: &str) -> DataFusionError {
    DataFusionError::Execution(format!("the streaming source {location} failed: {why}"))
}

/// A reqwest error without the URL it repeats (the location is said once, in front).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    text
}

/// `wait` give or take a quarter, so that reconnecting readers spread out.
fn jitter(wait: Duration) -> Duration {
    let quarter = wait / 4;
    wait - quarter + quarter.mul_f64(2.0 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_streams_or_not() {
        assert_eq!(
            Location::parse("http://127.0.0.1:9000/s"),
            Some(Location::Http("http://127.0.0.1:9000/s".into()))
        );
        assert_eq!(
            Location::parse("WSS://h/x"),
            Some(Location::WebSocket("WSS://h/x".into()))
        );
        assert_eq!(Location::parse("/dev/stdin"), Some(Location::Stdin));
        assert_eq!(Location::parse("data/reviews.json"), None);
        assert_eq!(Location::parse("s3://bucket/x.json"), None);
    }

    #[test]
    fn options_parse_and_refuse_what_they_must() {
        let options: HashMap<String, String> = [
            ("format.max_batch_rows", "8"),
            ("header.authorization", "env:STREAM_TOKEN"),
            ("dead_letter", "bad.ndjson"),
            ("reconnect_max", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let parsed = SourceOptions::parse(&options).unwrap();
        assert_eq!(parsed.max_batch_rows, 8);
        assert_eq!(parsed.reconnect_max, 3);
        assert_eq!(
            parsed.headers,
            [("authorization".to_string(), "STREAM_TOKEN".to_string())]
        );
        for (key, value, why) in [
            (
                "header.authorization",
                "Bearer sk-123",
                "must name an environment variable",
            ),
            ("max_batch_rows", "0", "above 0"),
            ("max_batch_rows", "many", "a positive whole number"),
            ("bogus", "1", "is not an option of a streaming source"),
        ] {
            let one = HashMap::from([(key.to_string(), value.to_string())]);
            let error = SourceOptions::parse(&one).unwrap_err().to_string();
            assert!(error.contains(why), "{key}: {error}");
            assert!(!error.contains("sk-123"), "{error}");
        }
    }
}
