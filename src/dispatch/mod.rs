//! The request pipeline: everything between an AI call's rows and the provider, in one
//! order. A request goes through
//!
//! 1. the query's memo ([`QueryMemo`]): identical requests of a query are sent once;
//! 2. the response cache ([`CacheStore`], `blossom.cache`): answers kept across
//!    queries and processes, in a file or in Redis;
//! 3. packing ([`packing`]) or embedding batches ([`embedding`]): rows that share an
//!    instruction go several to a request;
//! 4. the query's budget ([`QueryBudget`]: requests, tokens, money): an attempt that
//!    would go over is not sent;
//! 5. the endpoint's limits: `blossom.max_concurrency` in flight, `requests_per_minute`,
//!    a provider-asked pause, and its circuit breaker; in a distributed query, the same
//!    limits again, shared by every worker ([`cluster_limits`], `blossom.cluster_limiter`);
//! 6. retries with backoff;
//! 7. the [`Provider`] (the OpenAI-compatible client by default);
//!
//! and its answer goes back the same way, to be parsed by the AI function. It knows
//! requests, not SQL: [`CallScope`] is the entry for one call's rows.

mod breaker;
pub(crate) mod budget;
mod cache;
mod claim;
pub mod cluster_limits;
pub mod embedding;
mod error;
mod json_format;
mod limits;
mod memo;
pub mod packing;
mod retry;
mod scope;
mod stop;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tracing::Instrument;

pub use budget::{BudgetExceeded, QueryBudget, Reservation};
pub use cache::{
    CACHE_FILE, CacheKey, CacheOpenError, CacheStore, FLUSH_BATCH, FLUSH_EVERY, KEY_PREFIX,
    PAUSE_AFTER_FAILURE, RedisCache, ResponseCache, redis_key,
};
pub use cluster_limits::{LimiterServer, WorkerCounts, report_work, set_worker_address};
pub use error::CallError;
pub use memo::QueryMemo;
pub use packing::{PackControl, Validate};
pub use scope::{AnswerResult, CallScope};
pub use stop::{QueryStop, StopReason};

use crate::config::{CacheLocation, OnError, Price, ProviderSettings};
use crate::error_class::ErrorClass;
use crate::observe::{CallObserver, SessionStats};
use crate::provider::{
    ChatAnswer, ChatClient, ChatRequest, EmbeddingAnswer, EmbeddingRequest, Provider,
    ProviderError, TokenUsage,
};
use breaker::{Breaker, BreakerSettings, OutageTooLong};
use cluster_limits::{LimiterRefusal, RemoteLimiter};
use json_format::{JsonSchemaRefusals, asks_json_schema, in_json_object_mode};
use limits::Limits;
use retry::Backoff;

/// Answers of one query, deduplicated by request.
pub type AnswerMemo = QueryMemo<ChatAnswer, CallError>;

/// The query a request is sent for: what it may spend, and its stop signal (once given,
/// no attempt of the query is sent and those in flight are dropped).
#[derive(Debug, Clone, Default)]
pub struct QueryControl {
    /// The query's spending so far, against its limits.
    pub budget: Arc<QueryBudget>,
    /// Given once the query cannot succeed.
    pub stop: Arc<QueryStop>,
}

/// A request answered, and the attempts it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered<T = ChatAnswer> {
    /// The provider's answer.
    pub answer: T,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

/// The session-wide dispatcher. Cloning the `Arc` shares its limits.
#[derive(Debug)]
pub struct Dispatcher {
    provider: Arc<dyn Provider>,
    /// The limits of each provider endpoint (scheme, host and port), shared by every
    /// query of the session; by URL, each with its endpoint.
    limits: Mutex<HashMap<String, (String, Arc<Limits>)>>,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    /// The cluster's limiter `blossom.cluster_limiter` names, with its own connections.
    cluster: Mutex<Option<Arc<RemoteLimiter>>>,
    /// Held while a cache opens (a Redis connection takes a round trip), so that a
    /// session opens each cache once.
    cache: tokio::sync::Mutex<Option<OpenCache>>,
    stats: Arc<SessionStats>,
    json_schema_refusals: JsonSchemaRefusals,
}

/// The cache a session last asked for, and its store unless it could not be opened
/// (then the session runs uncached while it names that cache, warned once).
#[derive(Debug)]
struct OpenCache {
    location: CacheLocation,
    cache: Option<CacheStore>,
}

impl Dispatcher {
    /// A dispatcher sending through the OpenAI-compatible client, with its own
    /// connection pool; session-wide events (a cache that cannot be opened) go to
    /// `stats`.
    pub fn new(stats: Arc<SessionStats>) -> Result<Self, ProviderError> {
        Ok(Self::with_provider(Arc::new(ChatClient::new()?), stats))
    }

    /// A dispatcher sending through `provider`.
    pub fn with_provider(provider: Arc<dyn Provider>, stats: Arc<SessionStats>) -> Self {
        Self {
            provider,
            limits: Mutex::default(),
            breakers: Mutex::default(),
            cluster: Mutex::default(),
            cache: tokio::sync::Mutex::new(None),
            stats,
            json_schema_refusals: JsonSchemaRefusals::default(),
        }
    }

    /// The session's counters.
    pub fn stats(&self) -> &Arc<SessionStats> {
        &self.stats
    }

    /// The limits of the endpoint `url` belongs to, set to `settings`.
    ///
    /// One endpoint has one set of limits, whatever query asks: every request to it,
    /// from any query of the session, takes a slot of the same cap. A query whose
    /// `max_concurrency` or `requests_per_minute` differs from the one in force sets
    /// them for the endpoint: a larger cap frees slots at once, a smaller one takes
    /// effect as requests in flight finish. So the provider never sees more requests in
    /// flight than the largest cap of the queries running, nor a faster start rate than
    /// the fastest of them.
    fn limits_for(&self, url: &str, settings: &ProviderSettings) -> Arc<Limits> {
        let mut by_url = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let limits = match by_url.get(url) {
            Some((_, limits)) => Arc::clone(limits),
            None => {
                // The first request to this URL: share the limits of its endpoint.
                let endpoint = limits::endpoint_of(url);
                let limits = by_url
                    .values()
                    .find(|(e, _)| *e == endpoint)
                    .map(|(_, limits)| Arc::clone(limits))
                    .unwrap_or_else(|| {
                        Arc::new(Limits::new(
                            settings.max_concurrency,
                            settings.requests_per_minute,
                        ))
                    });
                by_url.insert(url.to_string(), (endpoint, Arc::clone(&limits)));
                limits
            }
        };
        limits.set(settings.max_concurrency, settings.requests_per_minute);
        limits
    }

    /// The circuit breaker of the endpoint `url`, shared by the session's queries.
    fn breaker_for(&self, url: &str) -> Arc<Breaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(breakers.entry(url.to_string()).or_default())
    }

    /// The cluster's limiter `settings` name, if any, kept while they name the same.
    fn cluster_limiter(&self, settings: &ProviderSettings) -> Option<Arc<RemoteLimiter>> {
        let url = settings.cluster_limiter.as_deref()?;
        let mut current = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_ref() {
            Some(limiter) if limiter.url() == url.trim_end_matches('/') => {
                Some(Arc::clone(limiter))
            }
            _ => {
                let limiter = Arc::new(RemoteLimiter::new(url));
                *current = Some(Arc::clone(&limiter));
                Some(limiter)
            }
        }
    }

    /// The response cache `settings` name, opened on first use and kept for the session
    /// until `blossom.cache` names another. `None` when the cache is off or cannot be
    /// used (a file in use by another process or unwritable, a Redis server that cannot
    /// be reached or refuses the password: warned once, naming it without its password).
    ///
    /// ```sql
    /// SET blossom.cache = '/tmp/other-cache';           -- the next query opens this one
    /// SET blossom.cache = 'redis://127.0.0.1:6379/0';   -- or this server
    /// ```
    pub async fn cache_for(&self, settings: &ProviderSettings) -> Option<CacheStore> {
        let location = settings.cache.as_ref()?;
        let mut current = self.cache.lock().await;
        if let Some(open) = current.as_ref()
            && &open.location == location
        {
            return open.cache.clone();
        }
        let cache = match CacheStore::open(location).await {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!("{error}; this session runs without it");
                self.stats.cache_refused(error.to_string());
                None
            }
        };
        *current = Some(OpenCache {
            location: location.clone(),
            cache: cache.clone(),
        });
        cache
    }

    /// Sends one request under the session's limits, retrying what is retryable, and
    /// reports each attempt to `observer`.
    ///
    /// Waits as long as the provider's `Retry-After` (or `retryAfterSeconds`) asks and
    /// makes every other request of the session wait too; otherwise backs off
    /// exponentially with jitter. 400, 401, 402 and 403 are never retried. Before each
    /// attempt it is charged to the observer's budget; an attempt that would exceed it
    /// is not sent ([`CallError::OverBudget`]). A request asking for a JSON schema that
    /// the provider refuses is asked again in JSON object mode, and so are the session's
    /// later ones to that provider.
    pub async fn call(
        &self,
        settings: &ProviderSettings,
        request: &ChatRequest,
        query: &QueryControl,
        observer: &dyn CallObserver,
    ) -> Result<Answered, CallError> {
        let url = &settings.chat_url;
        let result = self.send_chat(settings, request, query, observer).await;
        match result {
            Err(CallError::Failed { attempts, error })
                if asks_json_schema(request) && error.refuses_json_schema() =>
            {
                tracing::info!(
                    url = %url,
                    "the provider refuses JSON schemas ({error}); asking in JSON object mode"
                );
                self.json_schema_refusals.remember(url);
                let fallback = self.send_chat(settings, request, query, observer).await;
                fallback.map(|answered| Answered {
                    attempts: answered.attempts + attempts,
                    ..answered
                })
            }
            other => other,
        }
    }

    /// Sends one chat request, retried under the session's limits; each attempt asks in
    /// JSON object mode instead of for a JSON schema once the provider refused one.
    async fn send_chat(
        &self,
        settings: &ProviderSettings,
        request: &ChatRequest,
        query: &QueryControl,
        observer: &dyn CallObserver,
    ) -> Result<Answered, CallError> {
        let attempt = Attempt {
            url: &settings.chat_url,
            model: &request.model,
            prompt_chars: request.prompt_chars(),
            max_answer_tokens: request.max_tokens,
            price: settings.price,
        };
        self.attempts(settings, attempt, query, observer, || async {
            let object_mode =
                asks_json_schema(request) && self.json_schema_refusals.refused(&settings.chat_url);
            let fallback = object_mode.then(|| in_json_object_mode(request));
            let answer = self
                .provider
                .complete(
                    &settings.chat_url,
                    &settings.api_key,
                    settings.request_timeout,
                    fallback.as_ref().unwrap_or(request),
                )
                .await?;
            let usage = answer.usage;
            Ok((answer, usage))
        })
        .await
    }

    /// Sends one embeddings request like [`Self::call`] sends a chat request: under the
    /// session's limits, retried, charged to the observer's budget.
    ///
    /// ```sql
    /// SELECT embed(text) FROM 'data/reviews.csv'; -- inputs go many to a request
    /// ```
    pub async fn embed(
        &self,
        settings: &ProviderSettings,
        request: &EmbeddingRequest,
        query: &QueryControl,
        observer: &dyn CallObserver,
    ) -> Result<Answered<EmbeddingAnswer>, CallError> {
        let attempt = Attempt {
            url: &settings.embeddings_url,
            model: &request.model,
            prompt_chars: request.input_chars(),
            // An embedding has no answer tokens.
            max_answer_tokens: Some(0),
            price: settings.embedding_price,
        };
        self.attempts(settings, attempt, query, observer, || async {
            let answer = self
                .provider
                .embed(
                    &settings.embeddings_url,
                    &settings.api_key,
                    settings.request_timeout,
                    request,
                )
                .await?;
            let usage = answer.usage;
            Ok((answer, usage))
        })
        .await
    }

    /// Makes attempts with `send` until one succeeds, one fails for good, or the budget
    /// stops them: the retry loop shared by every kind of request.
    async fn attempts<T, F, Fut>(
        &self,
        settings: &ProviderSettings,
        attempt: Attempt<'_>,
        query: &QueryControl,
        observer: &dyn CallObserver,
        send: F,
    ) -> Result<Answered<T>, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(T, Option<TokenUsage>), ProviderError>>,
    {
        let limits = self.limits_for(attempt.url, settings);
        let breaker = self.breaker_for(attempt.url);
        let breaker_settings = BreakerSettings {
            failures: settings.breaker_failures,
            max_outage: settings.max_outage,
            probe_delay: settings.retry_initial_backoff,
            max_probe_delay: settings.retry_max_backoff,
        };
        let stop = &*query.stop;
        let mut backoff = Backoff::new(settings);
        // Attempts sent, and those that count against `max_retries`: under
        // `on_error = 'null'` an attempt that fails while the breaker is open is the
        // outage's, not the row's, and does not count.
        let mut attempts = 0;
        let mut counted = 0;
        let _slot = stop
            .unless_stopped(limits.slot())
            .await
            .map_err(CallError::Stopped)?;
        // In a distributed query, a slot of the cluster's cap too, held as long.
        let cluster = self.cluster_limiter(settings);
        let endpoint = match cluster {
            Some(_) => limits::endpoint_of(attempt.url),
            None => String::new(),
        };
        let _cluster_slot = match &cluster {
            Some(cluster) => Some(
                stop.unless_stopped(cluster.slot(&endpoint, settings))
                    .await
                    .map_err(CallError::Stopped)?
                    .map_err(|refusal| refused_by_cluster(stop, refusal, 0))?,
            ),
            None => None,
        };
        loop {
            let admission = match stop.unless_stopped(breaker.admit(&breaker_settings)).await {
                Err(reason) => return Err(CallError::Stopped(reason)),
                Ok(Err(too_long)) => {
                    return Err(CallError::Stopped(outage_stop(
                        stop,
                        &breaker,
                        attempt.url,
                        settings,
                        too_long,
                    )));
                }
                Ok(Ok(admission)) => admission,
            };
            attempts += 1;
            counted += 1;
            let span = tracing::debug_span!(
                "request",
                url = %attempt.url,
                model = %attempt.model,
                attempt = attempts,
            );
            let sent = async {
                let mut throttled = limits.throttle().await;
                if let Some(cluster) = &cluster {
                    throttled += cluster
                        .start(&endpoint, settings)
                        .await
                        .map_err(|refusal| refused_by_cluster(stop, refusal, attempts - 1))?;
                }
                if !throttled.is_zero() {
                    observer.throttled(throttled);
                }
                let reservation = query
                    .budget
                    .reserve(
                        attempt.prompt_chars,
                        attempt.max_answer_tokens,
                        attempt.model,
                        attempt.price,
                    )
                    .map_err(CallError::OverBudget)?;
                let in_flight = InFlight::start(observer, attempts > 1);
                let started = std::time::Instant::now();
                let result = send().await;
                let latency = started.elapsed();
                let usage = result.as_ref().ok().and_then(|(_, usage)| *usage);
                query.budget.settle(reservation, usage);
                in_flight.finish(latency, usage, result.as_ref().err());
                if result.is_ok() {
                    // An answer is paid for at its reported tokens, else at the estimate
                    // the budget charged; a failed attempt is not billed.
                    let billed = usage.unwrap_or(reservation.estimate());
                    observer.charged(attempt.price.map(|price| {
                        price.cost_nanos(billed.prompt_tokens, billed.completion_tokens)
                    }));
                }
                let usage = usage.unwrap_or_default();
                match &result {
                    Ok(_) => tracing::debug!(
                        latency_ms = latency.as_millis() as u64,
                        prompt_tokens = usage.prompt_tokens,
                        completion_tokens = usage.completion_tokens,
                        "answered"
                    ),
                    Err(error) => tracing::debug!(
                        latency_ms = latency.as_millis() as u64,
                        class = error.class().as_str(),
                        "failed: {error}"
                    ),
                }
                Ok(result)
            }
            .instrument(span);
            // A stop drops the attempt in flight: its connection is closed, so the
            // provider stops working on it.
            let result = stop
                .unless_stopped(sent)
                .await
                .map_err(CallError::Stopped)??;
            let error = match result {
                Ok((answer, _)) => {
                    breaker.succeeded();
                    return Ok(Answered { answer, attempts });
                }
                Err(error) => error,
            };
            if error.refuses_account() {
                // A refused key or account fails every row alike: stop the query
                // whatever `on_error` says.
                tracing::debug!(url = %attempt.url, "the provider refuses the account: {error}");
                let reason = StopReason::Refused(error.to_string());
                return Err(CallError::Stopped(stop.stop(reason)));
            }
            let open = breaker.failed(admission, &error, &breaker_settings);
            if open && error.is_retryable() && settings.on_error == OnError::Null {
                counted -= 1;
                tracing::debug!(
                    url = %attempt.url,
                    attempt = attempts,
                    "the provider is unreachable ({error}); waiting for it to come back"
                );
                continue;
            }
            if !error.is_retryable() || counted > settings.max_retries {
                tracing::debug!(
                    url = %attempt.url,
                    attempts,
                    class = error.class().as_str(),
                    "request failed for good: {error}"
                );
                return Err(CallError::Failed { attempts, error });
            }
            let wait = match error.retry_after() {
                Some(asked) => {
                    limits.cool_down(asked);
                    if let Some(cluster) = &cluster {
                        // The provider's pause holds for every worker.
                        cluster.cool_down(&endpoint, asked).await;
                    }
                    asked
                }
                None => backoff.next_delay(),
            };
            observer.retrying(error.class());
            if error.class() == ErrorClass::RateLimited {
                observer.throttled(wait);
            }
            tracing::debug!(
                url = %attempt.url,
                attempt = attempts,
                class = error.class().as_str(),
                wait_ms = wait.as_millis() as u64,
                "retrying after: {error}"
            );
            stop.unless_stopped(tokio::time::sleep(wait))
                .await
                .map_err(CallError::Stopped)?;
        }
    }
}

/// What a request gets when the cluster's limiter does not let it go on: a connection
/// error naming the limiter (this request fails, after `attempts` sent), or, when it
/// refuses the token, a stop of the query, since every request would be refused alike.
fn refused_by_cluster(stop: &QueryStop, refusal: LimiterRefusal, attempts: u32) -> CallError {
    match refusal {
        LimiterRefusal::Unreachable(error) => {
            tracing::debug!("{error}");
            CallError::Failed { attempts, error }
        }
        LimiterRefusal::Refused(why) => CallError::Stopped(stop.stop(StopReason::Refused(why))),
    }
}

/// Stops the query for an outage longer than `blossom.max_outage`, then closes the
/// breaker so that the next query tries the provider again.
fn outage_stop(
    stop: &QueryStop,
    breaker: &Breaker,
    url: &str,
    settings: &ProviderSettings,
    too_long: OutageTooLong,
) -> Arc<StopReason> {
    let reason = StopReason::Outage(format!(
        "the provider at {} has been unreachable for {:.1} s, longer than blossom.max_outage \
         = {} s (last error: {}); raise blossom.max_outage to wait longer",
        url,
        too_long.down_for.as_secs_f64(),
        settings.max_outage.as_secs_f64(),
        too_long.last_error,
    ));
    let reason = stop.stop(reason);
    breaker.reset();
    reason
}

/// An attempt in flight, reported to the observer when it starts and when it finishes or
/// is dropped.
struct InFlight<'a> {
    observer: &'a dyn CallObserver,
    done: bool,
}

impl<'a> InFlight<'a> {
    fn start(observer: &'a dyn CallObserver, retry: bool) -> Self {
        observer.attempt_started(retry);
        Self {
            observer,
            done: false,
        }
    }

    fn finish(
        mut self,
        latency: std::time::Duration,
        usage: Option<TokenUsage>,
        error: Option<&ProviderError>,
    ) {
        self.done = true;
        self.observer.attempt_finished(latency, usage, error);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.observer.attempt_dropped();
        }
    }
}

/// What the retry loop needs to know of a request: where it goes, for the spans, and
/// its size and its model's price, for the budget and the cost.
struct Attempt<'a> {
    url: &'a str,
    model: &'a str,
    prompt_chars: usize,
    max_answer_tokens: Option<u32>,
    price: Option<Price>,
}
