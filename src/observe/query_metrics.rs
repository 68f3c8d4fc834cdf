//! Per-query, per-function metrics of AI calls, kept per session and queryable as the
//! table `blossom_metrics()`: rows, unique prompts, cache and dedup hits, requests,
//! retries by cause, failures, tokens, cost, latency percentiles and time throttled.
//!
//! ```sql
//! SELECT sentiment(text) FROM 'data/reviews.csv';
//! SELECT query_id, function, rows, requests, latency_p95_ms FROM blossom_metrics();
//! ```

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::error_log::now_unix_ms;
use super::stats::StatsSnapshot;
use crate::config::NANO_USD_PER_USD;
use crate::error_class::ErrorClass;
use crate::provider::TokenUsage;

/// (query, function) entries kept; the oldest are dropped first.
const CAPACITY: usize = 1_000;

/// Latencies above this many microseconds (an hour) are recorded as an hour.
const LATENCY_CEILING_US: u64 = 3_600_000_000;

/// The metrics of a session's queries, one entry per query and AI function, and, on
/// the coordinator of a cluster, one per query, AI function and worker: the workers'
/// reports ([`WorkReport`]) added up.
#[derive(Debug, Default)]
pub struct MetricsLog {
    entries: Mutex<VecDeque<Arc<FunctionMetrics>>>,
    /// The latest report of each worker's entry, by worker and part.
    reports: Mutex<HashMap<(String, u64), WorkReport>>,
}

impl MetricsLog {
    fn register(&self, entry: Arc<FunctionMetrics>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Every entry so far, oldest first.
    pub fn entries(&self) -> Vec<Arc<FunctionMetrics>> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn schema() -> SchemaRef {
        let count = |name: &str| Field::new(name, DataType::UInt64, false);
        let millis = |name: &str| Field::new(name, DataType::Float64, true);
        Arc::new(Schema::new(vec![
            count("query_id"),
            Field::new("function", DataType::Utf8, false),
            Field::new(
                "started_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            count("rows"),
            count("unique_prompts"),
            count("cache_hits"),
            count("dedup_hits"),
            count("requests"),
            count("retries"),
            count("retries_rate_limited"),
            count("retries_server_error"),
            count("retries_timeout"),
            count("retries_connect"),
            count("retries_other"),
            count("failed_rows"),
            count("repacked_rows"),
            Field::new("pack_rows", DataType::UInt64, true),
            count("input_tokens"),
            count("output_tokens"),
            Field::new("cost", DataType::Float64, true),
            millis("latency_p50_ms"),
            millis("latency_p95_ms"),
            millis("latency_p99_ms"),
            millis("latency_max_ms"),
            Field::new("throttled_ms", DataType::Float64, false),
            Field::new("worker", DataType::Utf8, true),
        ]))
    }

    fn batch(&self) -> Result<RecordBatch> {
        let entries = self.entries();
        let snapshots: Vec<Snapshot> = entries.iter().map(|e| e.snapshot()).collect();
        let count = |f: fn(&Snapshot) -> u64| {
            Arc::new(UInt64Array::from_iter_values(snapshots.iter().map(f))) as ArrayRef
        };
        let millis = |f: fn(&Snapshot) -> Option<f64>| {
            Arc::new(Float64Array::from_iter(snapshots.iter().map(f))) as ArrayRef
        };
        let columns: Vec<ArrayRef> = vec![
            count(|s| s.query_id),
            Arc::new(StringArray::from_iter_values(
                snapshots.iter().map(|s| s.function.as_str()),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(snapshots.iter().map(|s| s.started_at))
                    .with_timezone("UTC"),
            ),
            count(|s| s.rows),
            count(|s| s.unique_prompts),
            count(|s| s.cache_hits),
            count(|s| s.dedup_hits),
            count(|s| s.requests),
            count(|s| s.retries.iter().sum()),
            count(|s| s.retries[Cause::RateLimited as usize]),
            count(|s| s.retries[Cause::ServerError as usize]),
            count(|s| s.retries[Cause::Timeout as usize]),
            count(|s| s.retries[Cause::Connect as usize]),
            count(|s| s.retries[Cause::Other as usize]),
            count(|s| s.failed_rows),
            count(|s| s.repacked_rows),
            Arc::new(UInt64Array::from_iter(
                snapshots.iter().map(|s| s.pack_rows),
            )),
            count(|s| s.input_tokens),
            count(|s| s.output_tokens),
            millis(|s| s.cost),
            millis(|s| s.latency_ms.map(|l| l.p50)),
            millis(|s| s.latency_ms.map(|l| l.p95)),
            millis(|s| s.latency_ms.map(|l| l.p99)),
            millis(|s| s.latency_ms.map(|l| l.max)),
            Arc::new(Float64Array::from_iter_values(
                snapshots.iter().map(|s| s.throttled_ms),
            )),
            Arc::new(StringArray::from_iter(
                snapshots.iter().map(|s| s.worker.as_deref()),
            )),
        ];
        Ok(RecordBatch::try_new(Self::schema(), columns)?)
    }
}

/// The metrics of one query: its id and one entry per AI function it calls, registered
/// in the session's log when the function first runs.
#[derive(Debug)]
pub struct QueryMetrics {
    query_id: u64,
    started_at: i64,
    log: Arc<MetricsLog>,
    functions: Mutex<Vec<Arc<FunctionMetrics>>>,
}

impl QueryMetrics {
    /// The metrics of query `query_id`, to be listed in `log`.
    pub fn new(query_id: u64, log: Arc<MetricsLog>) -> Self {
        Self {
            query_id,
            started_at: now_unix_ms(),
            log,
            functions: Mutex::default(),
        }
    }

    /// The query's number in its session, from 1.
    pub fn query_id(&self) -> u64 {
        self.query_id
    }

    /// Its entries so far, in the order they were first used.
    pub fn functions(&self) -> Vec<Arc<FunctionMetrics>> {
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The entry of `function` in this query, made and listed on first use.
    pub fn function(self: &Arc<Self>, function: &'static str) -> Arc<FunctionMetrics> {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = functions.iter().find(|f| f.function == function) {
            return Arc::clone(existing);
        }
        let entry = Arc::new(FunctionMetrics::new(
            self.query_id,
            self.started_at,
            Cow::Borrowed(function),
            None,
        ));
        functions.push(Arc::clone(&entry));
        self.log.register(Arc::clone(&entry));
        entry
    }
}

/// A latency histogram from 1 µs to an hour, to 1% precision (about 20 KiB). `None`
/// only if hdrhistogram refused these constant bounds, in which case latencies are not
/// recorded rather than the query failing.
fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_CEILING_US, 2).ok()
}

/// Why a request was retried, as `blossom_metrics()` counts it.
#[derive(Debug, Clone, Copy)]
enum Cause {
    RateLimited,
    ServerError,
    Timeout,
    Connect,
    Other,
}

impl Cause {
    const COUNT: usize = 5;

    fn of(class: ErrorClass) -> Self {
        match class {
            ErrorClass::RateLimited => Self::RateLimited,
            ErrorClass::ServerError => Self::ServerError,
            ErrorClass::Timeout => Self::Timeout,
            ErrorClass::Connect => Self::Connect,
            _ => Self::Other,
        }
    }
}

/// The counters of one entry. `pack_rows` is a level (the last pack size); every other
/// field is a count, listed by [`Self::counts`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counters {
    rows: AtomicU64,
    /// Of those, rows answered or failed so far.
    rows_done: AtomicU64,
    unique_prompts: AtomicU64,
    cache_hits: AtomicU64,
    dedup_hits: AtomicU64,
    requests: AtomicU64,
    retries: [AtomicU64; Cause::COUNT],
    failed_rows: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    throttled_us: AtomicU64,
    not_sent: AtomicU64,
    not_sent_prompt_chars: AtomicU64,
    repacked_rows: AtomicU64,
    pack_rows: AtomicU64,
    incomplete_estimates: AtomicU64,
    cost_nanos: AtomicU64,
    unpriced_requests: AtomicU64,
    not_sent_cost_nanos: AtomicU64,
    not_sent_unpriced: AtomicU64,
}

impl Counters {
    /// Every count (all fields but `pack_rows`), so that copying and adding up cannot
    /// forget one.
    fn counts(&self) -> [&AtomicU64; 23] {
        let [r0, r1, r2, r3, r4] = &self.retries;
        [
            &self.rows,
            &self.rows_done,
            &self.unique_prompts,
            &self.cache_hits,
            &self.dedup_hits,
            &self.requests,
            r0,
            r1,
            r2,
            r3,
            r4,
            &self.failed_rows,
            &self.input_tokens,
            &self.output_tokens,
            &self.throttled_us,
            &self.not_sent,
            &self.not_sent_prompt_chars,
            &self.repacked_rows,
            &self.incomplete_estimates,
            &self.cost_nanos,
            &self.unpriced_requests,
            &self.not_sent_cost_nanos,
            &self.not_sent_unpriced,
        ]
    }

    /// The counts of `parts` added up (the pack size: the last part's that packed).
    fn sum<'a>(parts: impl IntoIterator<Item = &'a Counters>) -> Counters {
        let sum = Counters::default();
        for part in parts {
            for (total, count) in sum.counts().into_iter().zip(part.counts()) {
                add(total, count.load(Ordering::Relaxed));
            }
            let pack_rows = part.pack_rows.load(Ordering::Relaxed);
            if pack_rows > 0 {
                sum.pack_rows.store(pack_rows, Ordering::Relaxed);
            }
        }
        sum
    }

    /// What these counts add to a session's live counters ([`StatsSnapshot`]).
    fn session_counts(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            rows: get(&self.rows),
            rows_done: get(&self.rows_done),
            failed_rows: get(&self.failed_rows),
            dedup_hits: get(&self.dedup_hits),
            cache_hits: get(&self.cache_hits),
            requests: get(&self.requests),
            retries: self.retries.iter().map(get).sum(),
            prompt_tokens: get(&self.input_tokens),
            completion_tokens: get(&self.output_tokens),
            cost_nanos: get(&self.cost_nanos),
            unpriced_requests: get(&self.unpriced_requests),
            ..StatsSnapshot::default()
        }
    }
}

/// Numbers the entries of this process, so that a worker's reports of one entry can be
/// told from those of another.
static PARTS: AtomicU64 = AtomicU64::new(1);

/// The metrics of one AI function within one query. It does not hold the query, so that
/// an entry dropped from the log frees its memory.
#[derive(Debug)]
pub struct FunctionMetrics {
    query_id: u64,
    started_at: i64,
    function: Cow<'static, str>,
    /// The worker whose reports this entry adds up; `None`: this process's own.
    worker: Option<String>,
    /// This entry's number in its process ([`PARTS`]).
    part: u64,
    /// Reports made of it so far.
    reports: AtomicU64,
    counters: Counters,
    latency_us: Mutex<Option<Histogram<u64>>>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl FunctionMetrics {
    fn new(
        query_id: u64,
        started_at: i64,
        function: Cow<'static, str>,
        worker: Option<String>,
    ) -> Self {
        Self {
            query_id,
            started_at,
            function,
            worker,
            part: PARTS.fetch_add(1, Ordering::Relaxed),
            reports: AtomicU64::new(0),
            counters: Counters::default(),
            latency_us: Mutex::new(new_histogram()),
        }
    }

    /// The AI function's name.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// What this entry counted so far, as `worker` reports it to its coordinator. Each
    /// report is numbered after the ones before it, and sees every count recorded
    /// before it was made.
    pub fn report(&self, worker: &str) -> WorkReport {
        // Under the histogram's lock, so that a later number never has older counts.
        let latency = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        let seq = self.reports.fetch_add(1, Ordering::Relaxed) + 1;
        WorkReport {
            worker: worker.to_string(),
            part: self.part,
            seq,
            query_id: self.query_id,
            function: self.function.to_string(),
            started_at: self.started_at,
            counters: Counters::sum([&self.counters]),
            latency_us: latency
                .iter()
                .flat_map(|h| h.iter_recorded())
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    /// Rows that needed an answer (NULL, blank and guarded-off rows excluded).
    pub(crate) fn rows(&self, n: u64) {
        add(&self.counters.rows, n);
    }

    /// A prompt not asked before in this query.
    pub(crate) fn unique_prompt(&self) {
        add(&self.counters.unique_prompts, 1);
    }

    /// A prompt answered by the persistent response cache.
    pub(crate) fn cache_hit(&self) {
        add(&self.counters.cache_hits, 1);
    }

    /// A row answered by an identical request of the same query.
    pub(crate) fn dedup_hit(&self) {
        add(&self.counters.dedup_hits, 1);
    }

    /// `done` rows are answered or failed, `failed` of them for good.
    pub(crate) fn rows_finished(&self, done: u64, failed: u64) {
        add(&self.counters.rows_done, done);
        add(&self.counters.failed_rows, failed);
    }

    /// Rows a packed answer did not cover validly, asked again in smaller packs.
    /// The pack size in force after a packed answer was judged.
    pub(crate) fn pack_size(&self, rows: u64) {
        self.counters.pack_rows.store(rows, Ordering::Relaxed);
    }

    pub(crate) fn repacked(&self, rows: u64) {
        add(&self.counters.repacked_rows, rows);
    }

    /// A row whose requests a dry run could not count in full (a list reduced over
    /// several chunks, whose combining requests depend on answers it does not have).
    pub(crate) fn estimate_incomplete(&self) {
        add(&self.counters.incomplete_estimates, 1);
    }

    /// A request a dry run (`blossom_estimate`) would have sent, of `prompt_chars`
    /// characters.
    pub(crate) fn not_sent(&self, prompt_chars: usize, cost_nanos: Option<u64>) {
        add(&self.counters.not_sent, 1);
        add(&self.counters.not_sent_prompt_chars, prompt_chars as u64);
        match cost_nanos {
            Some(nanos) => add(&self.counters.not_sent_cost_nanos, nanos),
            None => add(&self.counters.not_sent_unpriced, 1),
        }
    }

    /// What an answered attempt cost, in nano-USD; `None` when its price is unknown.
    pub(crate) fn charged(&self, cost_nanos: Option<u64>) {
        match cost_nanos {
            Some(nanos) => add(&self.counters.cost_nanos, nanos),
            None => add(&self.counters.unpriced_requests, 1),
        }
    }

    /// The counters now, with latency percentiles.
    pub fn snapshot(&self) -> Snapshot {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let latency = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |us: u64| us as f64 / 1_000.0;
        Snapshot {
            query_id: self.query_id,
            function: self.function.to_string(),
            worker: self.worker.clone(),
            started_at: self.started_at,
            rows: get(&c.rows),
            unique_prompts: get(&c.unique_prompts),
            cache_hits: get(&c.cache_hits),
            dedup_hits: get(&c.dedup_hits),
            requests: get(&c.requests),
            retries: std::array::from_fn(|i| get(&c.retries[i])),
            failed_rows: get(&c.failed_rows),
            input_tokens: get(&c.input_tokens),
            output_tokens: get(&c.output_tokens),
            latency_ms: latency.as_ref().and_then(Latency::of),
            throttled_ms: ms(get(&c.throttled_us)),
            repacked_rows: get(&c.repacked_rows),
            pack_rows: Some(get(&c.pack_rows)).filter(|n| *n > 0),
            incomplete_estimates: get(&c.incomplete_estimates),
            not_sent: get(&c.not_sent),
            not_sent_prompt_chars: get(&c.not_sent_prompt_chars),
            cost: usd(get(&c.cost_nanos), get(&c.unpriced_requests)),
            not_sent_cost: usd(get(&c.not_sent_cost_nanos), get(&c.not_sent_unpriced)),
        }
    }
}

impl FunctionMetrics {
    /// Time an attempt waited for the rate limit or a provider-asked pause.
    pub(crate) fn throttled(&self, waited: Duration) {
        add(&self.counters.throttled_us, waited.as_micros() as u64);
    }

    /// An attempt came back after `latency`, with the provider's token usage when it
    /// reported one.
    pub(crate) fn attempt_finished(&self, latency: Duration, usage: Option<TokenUsage>) {
        add(&self.counters.requests, 1);
        if let Some(usage) = usage {
            add(&self.counters.input_tokens, usage.prompt_tokens);
            add(&self.counters.output_tokens, usage.completion_tokens);
        }
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_CEILING_US);
        let mut histogram = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(histogram) = histogram.as_mut() {
            histogram.saturating_record(us);
        }
    }

    /// A failed attempt of class `class` will be retried.
    pub(crate) fn retrying(&self, class: ErrorClass) {
        add(&self.counters.retries[Cause::of(class) as usize], 1);
    }
}

/// `nanos` nano-USD in USD, or `None` (unknown) when `unpriced` requests had no price.
fn usd(nanos: u64, unpriced: u64) -> Option<f64> {
    (unpriced == 0).then(|| nanos as f64 / NANO_USD_PER_USD)
}

/// Request latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds; `None` when it is empty.
    fn of(histogram: &Histogram<u64>) -> Option<Self> {
        let ms = |us: u64| us as f64 / 1_000.0;
        (!histogram.is_empty()).then(|| Self {
            p50: ms(histogram.value_at_quantile(0.5)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        })
    }
}

impl MetricsLog {
    /// The number of the session's latest query with AI calls (0 when none), for
    /// [`Self::latency_since`] to start after.
    pub fn last_query_id(&self) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|e| e.query_id).max().unwrap_or(0)
    }

    /// The latency of every request of the queries numbered above `query_id`, all
    /// functions together (the CLI's status line and `/metrics`); `None` when none
    /// was sent.
    pub fn latency_since(&self, query_id: u64) -> Option<Latency> {
        let mut merged = new_histogram()?;
        for entry in self.entries().iter().filter(|e| e.query_id > query_id) {
            let latency = entry.latency_us.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(latency) = latency.as_ref() {
                // Same bounds: adding cannot fail; a refusal leaves the entry out.
                let _ = merged.add(latency);
            }
        }
        Latency::of(&merged)
    }
}

/// What one entry of a worker counted, as the worker sends it to its coordinator while
/// its partitions run and when each ends (see `dispatch::report_work`): the coordinator's
/// [`MetricsLog::absorb`] keeps the latest of each entry and shows them added up per
/// query, function and worker.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkReport {
    /// The worker's name (its listening address).
    pub worker: String,
    /// The entry's number in the worker's process.
    part: u64,
    /// The report's number among the entry's reports.
    seq: u64,
    /// The coordinator's query number (the plan carries it to the workers).
    pub query_id: u64,
    /// The AI function.
    pub function: String,
    started_at: i64,
    counters: Counters,
    /// The latency histogram, as (microseconds, count) pairs.
    latency_us: Vec<(u64, u64)>,
}

impl WorkReport {
    fn histogram(&self) -> Option<Histogram<u64>> {
        let mut histogram = new_histogram()?;
        for &(us, count) in &self.latency_us {
            histogram.saturating_record_n(us.clamp(1, LATENCY_CEILING_US), count);
        }
        Some(histogram)
    }
}

/// Reports a coordinator keeps; the oldest queries' are dropped first.
const REPORTS_CAPACITY: usize = 8 * CAPACITY;

impl MetricsLog {
    /// Takes a worker's report: its entry for (query, function, worker) becomes the sum
    /// of the latest report of each of the worker's parts. Gives what the report adds
    /// to the session's live counters (nothing when an as new one came already).
    pub fn absorb(&self, report: WorkReport) -> StatsSnapshot {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let key = (report.worker.clone(), report.part);
        let before = match reports.get(&key) {
            Some(old) if old.seq >= report.seq => return StatsSnapshot::default(),
            Some(old) => old.counters.session_counts(),
            None => StatsSnapshot::default(),
        };
        let added = report.counters.session_counts().since(&before);
        let (query_id, function, worker) = (
            report.query_id,
            report.function.clone(),
            report.worker.clone(),
        );
        if reports.len() >= REPORTS_CAPACITY {
            let oldest = reports.values().map(|r| r.query_id).min().unwrap_or(0);
            reports.retain(|_, r| r.query_id != oldest);
        }
        reports.insert(key, report);
        let parts: Vec<&WorkReport> = reports
            .values()
            .filter(|r| r.query_id == query_id && r.function == function && r.worker == worker)
            .collect();
        let entry = FunctionMetrics {
            started_at: parts.iter().map(|r| r.started_at).min().unwrap_or(0),
            counters: Counters::sum(parts.iter().map(|r| &r.counters)),
            latency_us: Mutex::new(parts.iter().filter_map(|r| r.histogram()).reduce(
                |mut total, h| {
                    // Same bounds: adding cannot fail; a refusal leaves the part out.
                    let _ = total.add(&h);
                    total
                },
            )),
            ..FunctionMetrics::new(query_id, 0, Cow::Owned(function), Some(worker))
        };
        // Still under the reports' lock, so that a later sum is never replaced by an
        // earlier one.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let same = entries.iter().position(|e| {
            e.query_id == entry.query_id && e.function == entry.function && e.worker == entry.worker
        });
        match same {
            Some(at) => entries[at] = Arc::new(entry),
            None => {
                drop(entries);
                self.register(Arc::new(entry));
            }
        }
        added
    }
}

/// One row of `blossom_metrics()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The query's number in its session (as in `blossom_errors()`).
    pub query_id: u64,
    /// The AI function.
    pub function: String,
    /// The worker that ran it, on a cluster's coordinator; `None`: this process.
    pub worker: Option<String>,
    /// When the query was planned, in milliseconds since the Unix epoch.
    pub started_at: i64,
    /// Rows that needed an answer.
    pub rows: u64,
    /// Distinct requests among them.
    pub unique_prompts: u64,
    /// Distinct requests answered by the persistent response cache.
    pub cache_hits: u64,
    /// Rows answered by an identical request of the same query.
    pub dedup_hits: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Retries, by cause: rate limited, server error, timeout, connect, other.
    pub retries: [u64; Cause::COUNT],
    /// Rows whose call failed for good.
    pub failed_rows: u64,
    /// Prompt tokens the provider reported.
    pub input_tokens: u64,
    /// Answer tokens the provider reported.
    pub output_tokens: u64,
    /// USD the answered requests cost: their tokens (as reported, else as estimated)
    /// at the model's price; 0 when nothing was sent (cache and dedup hits cost
    /// nothing); `None` when a request's model has no known price.
    pub cost: Option<f64>,
    /// Latency of the requests sent; `None` when none was.
    pub latency_ms: Option<Latency>,
    /// Time requests waited for the rate limit or a provider-asked pause.
    pub throttled_ms: f64,
    /// Rows a packed answer did not cover validly, asked again in smaller packs.
    pub repacked_rows: u64,
    /// The pack size in force after the call's last packed answer (it halves when
    /// packs come back broken); `None` when nothing was packed.
    pub pack_rows: Option<u64>,
    /// Rows a dry run could not count in full.
    pub incomplete_estimates: u64,
    /// Requests a dry run (`blossom_estimate`) would have sent.
    pub not_sent: u64,
    /// Their characters.
    pub not_sent_prompt_chars: u64,
    /// Their cost in USD: prompts and longest answers (`max_answer_tokens`, 0 when
    /// unset, so then a lower bound) at the model's price; `None` when the price is
    /// unknown.
    pub not_sent_cost: Option<f64>,
}

/// `blossom_metrics()`: the session's per-query, per-function metrics as a table.
///
/// ```sql
/// SELECT function, sum(requests), sum(input_tokens + output_tokens)
/// FROM blossom_metrics() GROUP BY function;
/// ```
#[derive(Debug)]
pub struct MetricsTable {
    log: Arc<MetricsLog>,
}

impl MetricsTable {
    /// The table function over `log`.
    pub fn new(log: Arc<MetricsLog>) -> Self {
        Self { log }
    }
}

impl TableFunctionImpl for MetricsTable {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("blossom_metrics() takes no arguments");
        }
        let batch = self.log.batch()?;
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}

/// The metrics log of a session made by [`crate::BlossomSessionBuilder`].
pub fn metrics_log(ctx: &SessionContext) -> Option<Arc<MetricsLog>> {
    ctx.state().config().get_extension::<MetricsLog>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> (Arc<MetricsLog>, Arc<QueryMetrics>) {
        let log = Arc::new(MetricsLog::default());
        let query = Arc::new(QueryMetrics::new(7, Arc::clone(&log)));
        (log, query)
    }

    #[test]
    fn one_entry_per_function_listed_on_first_use() {
        let (log, query) = query();
        assert!(log.entries().is_empty());
        let a = query.function("sentiment");
        let b = query.function("sentiment");
        assert!(Arc::ptr_eq(&a, &b));
        query.function("enhance");
        let functions: Vec<_> = log
            .entries()
            .iter()
            .map(|e| e.function().to_string())
            .collect();
        assert_eq!(functions, ["sentiment", "enhance"]);
    }

    #[test]
    fn latency_percentiles_and_retry_causes() {
        let (_, query) = query();
        let metrics = query.function("sentiment");
        for ms in 1..=100 {
            metrics.attempt_finished(
                Duration::from_millis(ms),
                Some(TokenUsage {
                    prompt_tokens: 3,
                    completion_tokens: 1,
                }),
            );
        }
        metrics.retrying(ErrorClass::RateLimited);
        metrics.retrying(ErrorClass::RateLimited);
        metrics.retrying(ErrorClass::ServerError);
        metrics.retrying(ErrorClass::Malformed);
        metrics.throttled(Duration::from_millis(250));
        let s = metrics.snapshot();
        assert_eq!((s.query_id, s.requests), (7, 100));
        assert_eq!((s.input_tokens, s.output_tokens), (300, 100));
        assert_eq!(s.retries, [2, 1, 0, 0, 1]);
        assert_eq!(s.throttled_ms, 250.0);
        let latency = s.latency_ms.unwrap();
        assert!((49.0..=51.0).contains(&latency.p50), "{latency:?}");
        assert!((94.0..=96.0).contains(&latency.p95), "{latency:?}");
        assert!((98.0..=100.0).contains(&latency.p99), "{latency:?}");
        assert!((99.0..=101.0).contains(&latency.max), "{latency:?}");
    }

    #[test]
    fn latency_since_merges_the_later_queries_functions() {
        let log = Arc::new(MetricsLog::default());
        assert_eq!(log.last_query_id(), 0);
        assert_eq!(log.latency_since(0), None);
        let early = Arc::new(QueryMetrics::new(1, Arc::clone(&log)));
        early
            .function("sentiment")
            .attempt_finished(Duration::from_secs(9), None);
        let late = Arc::new(QueryMetrics::new(2, Arc::clone(&log)));
        for ms in 1..=50 {
            late.function("sentiment")
                .attempt_finished(Duration::from_millis(ms), None);
            late.function("enhance")
                .attempt_finished(Duration::from_millis(ms + 50), None);
        }
        assert_eq!(log.last_query_id(), 2);
        let latency = log.latency_since(1).expect("requests after query 1");
        assert!((49.0..=51.0).contains(&latency.p50), "{latency:?}");
        assert!((98.0..=100.0).contains(&latency.p99), "{latency:?}");
        let all = log.latency_since(0).expect("every request");
        assert!(all.max > 8_000.0, "query 1's 9 s request is in: {all:?}");
        assert_eq!(log.latency_since(2), None);
    }

    #[test]
    fn cost_adds_up_and_is_unknown_once_a_request_has_no_price() {
        let (log, query) = query();
        let priced = query.function("sentiment");
        priced.charged(Some(1_500));
        priced.charged(Some(500));
        query.function("enhance").cache_hit();
        let unpriced = query.function("summarize");
        unpriced.charged(Some(1_000));
        unpriced.charged(None);
        let batch = log.batch().unwrap();
        let cost = batch
            .column_by_name("cost")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone();
        assert_eq!(cost.value(0), 2e-6);
        assert_eq!(cost.value(1), 0.0, "cache hits cost nothing");
        assert!(
            datafusion::arrow::array::Array::is_null(&cost, 2),
            "unknown, not 0"
        );
    }

    #[test]
    fn a_coordinator_adds_up_the_latest_report_of_each_workers_part() {
        // Two parts (stages) of one query on worker w1, one on w2.
        let (_, on_w1) = query();
        let stage_a = on_w1.function("sentiment");
        let stage_b =
            Arc::new(QueryMetrics::new(7, Arc::new(MetricsLog::default()))).function("sentiment");
        let (_, on_w2) = query();
        let w2 = on_w2.function("sentiment");
        let coordinator = MetricsLog::default();

        stage_a.rows(10);
        stage_a.attempt_finished(Duration::from_millis(10), None);
        let early = stage_a.report("w1");
        stage_a.rows(5);
        stage_a.attempt_finished(Duration::from_millis(30), None);
        let late = stage_a.report("w1");
        let added = coordinator.absorb(late);
        assert_eq!((added.rows, added.requests), (15, 2));
        // An older report of the same part, arriving late, changes nothing.
        assert_eq!(coordinator.absorb(early), StatsSnapshot::default());

        stage_b.rows(4);
        stage_b.cache_hit();
        assert_eq!(coordinator.absorb(stage_b.report("w1")).rows, 4);
        w2.rows(1);
        w2.attempt_finished(Duration::from_millis(20), None);
        assert_eq!(coordinator.absorb(w2.report("w2")).requests, 1);
        // A newer report of a part adds only what is new.
        stage_b.rows(1);
        assert_eq!(coordinator.absorb(stage_b.report("w1")).rows, 1);

        let rows: Vec<(Option<String>, u64, u64, u64)> = coordinator
            .entries()
            .iter()
            .map(|e| e.snapshot())
            .map(|s| (s.worker, s.rows, s.requests, s.cache_hits))
            .collect();
        assert_eq!(
            rows,
            [
                (Some("w1".to_string()), 20, 2, 1),
                (Some("w2".to_string()), 1, 1, 0)
            ]
        );
        let latency = coordinator.entries()[0].snapshot().latency_ms.unwrap();
        assert!((29.0..=31.0).contains(&latency.max), "{latency:?}");
        let batch = coordinator.batch().unwrap();
        let worker = batch.column_by_name("worker").unwrap();
        assert_eq!(worker.len(), 2);
        assert!(!worker.is_null(0));
    }

    #[test]
    fn no_requests_means_no_latency() {
        let (log, query) = query();
        query.function("enhance").cache_hit();
        let batch = log.batch().unwrap();
        assert_eq!(batch.num_rows(), 1);
        let p50 = batch.column_by_name("latency_p50_ms").unwrap();
        assert!(p50.is_null(0));
    }
}
