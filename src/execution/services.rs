//! What an AI operator takes at execute time, so that its plan holds only its
//! description and can run in any session that has these: the session's services
//! ([`AiServices`], a `SessionConfig` extension) and the state of one query
//! ([`QueryState`]: its memo, budget, stop signal, metrics and pack sizes), made when
//! the query's first AI operator starts and shared by all its operators and partitions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use datafusion::common::{Result, internal_datafusion_err};
use datafusion::execution::TaskContext;

use crate::config::{BlossomOptions, ProviderSettings};
use crate::dispatch::{AnswerMemo, Dispatcher, PackControl, QueryBudget, QueryControl};
use crate::observe::{ErrorLog, MetricsLog, QueryMetrics, SessionStats};

/// Finished answers a query remembers for deduplication (older ones are forgotten).
const QUERY_MEMO_CAPACITY: usize = 200_000;

/// The services of a session that AI operators run with: the dispatcher (limits,
/// cache, provider), the error log, the metrics log and the live counters.
///
/// A session made by [`crate::BlossomSessionBuilder`] holds them as an extension of its
/// `SessionConfig`; an operator decoded in another session (a worker) runs with that
/// session's own.
#[derive(Debug)]
pub struct AiServices {
    dispatcher: Arc<Dispatcher>,
    errors: Arc<ErrorLog>,
    metrics: Arc<MetricsLog>,
    stats: Arc<SessionStats>,
    /// The state of each query running, by the task context it runs in.
    queries: Mutex<Vec<(Weak<TaskContext>, Arc<QueryState>)>>,
}

impl AiServices {
    /// The services made of these parts.
    pub fn new(
        dispatcher: Arc<Dispatcher>,
        errors: Arc<ErrorLog>,
        metrics: Arc<MetricsLog>,
        stats: Arc<SessionStats>,
    ) -> Self {
        Self {
            dispatcher,
            errors,
            metrics,
            stats,
            queries: Mutex::default(),
        }
    }

    /// The services of the session `context` belongs to.
    pub fn of(context: &TaskContext) -> Result<Arc<Self>> {
        context
            .session_config()
            .get_extension::<Self>()
            .ok_or_else(|| {
                internal_datafusion_err!(
                    "AI functions need a session made by BlossomSessionBuilder (its \
                     SessionConfig holds no AiServices)"
                )
            })
    }

    /// The session's dispatcher.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The session's log of failed rows.
    pub fn errors(&self) -> &Arc<ErrorLog> {
        &self.errors
    }

    /// The session's live counters.
    pub fn stats(&self) -> &Arc<SessionStats> {
        &self.stats
    }

    /// The state of the query running in `context`, made on first use: numbered
    /// `query_id`, within the budget `options` set, its metrics listed in the session's
    /// log (or, for a dry run, in the dry run's own).
    pub(crate) fn query(
        &self,
        context: &Arc<TaskContext>,
        query_id: u64,
        options: &BlossomOptions,
    ) -> Arc<QueryState> {
        let mut queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.retain(|(task, _)| task.strong_count() > 0);
        let found = queries.iter().find(|(task, _)| {
            task.upgrade()
                .is_some_and(|task| Arc::ptr_eq(&task, context))
        });
        if let Some((_, state)) = found {
            return Arc::clone(state);
        }
        let dry_run = context.session_config().get_extension::<DryRun>();
        let metrics = match &dry_run {
            Some(dry_run) => Arc::clone(&dry_run.query),
            None => Arc::new(QueryMetrics::new(query_id, Arc::clone(&self.metrics))),
        };
        let state = Arc::new(QueryState {
            memo: Arc::new(AnswerMemo::new(QUERY_MEMO_CAPACITY)),
            control: QueryControl {
                budget: Arc::new(QueryBudget::new(options.budget())),
                stop: Arc::default(),
            },
            metrics,
            dry_run: dry_run.is_some(),
            pack_controls: Mutex::default(),
        });
        queries.push((Arc::downgrade(context), Arc::clone(&state)));
        state
    }
}

/// What an AI operator executes with: the session's `blossom.*` options and the
/// settings they resolve to, the session's services and the query's state.
pub(crate) struct Started {
    pub options: BlossomOptions,
    pub settings: Arc<ProviderSettings>,
    pub services: Arc<AiServices>,
    pub query: Arc<QueryState>,
}

impl Started {
    /// What the operators of query `query_id` running in `context` take.
    pub(crate) fn in_context(context: &Arc<TaskContext>, query_id: u64) -> Result<Self> {
        let options = context
            .session_config()
            .options()
            .extensions
            .get::<BlossomOptions>()
            .cloned()
            .unwrap_or_default();
        let settings = Arc::new(options.resolve()?);
        let services = AiServices::of(context)?;
        let query = services.query(context, query_id, &options);
        Ok(Self {
            options,
            settings,
            services,
            query,
        })
    }
}

/// The state of one query's AI calls, made at execute time.
#[derive(Debug)]
pub(crate) struct QueryState {
    /// Answers of the query, deduplicated by request.
    pub memo: Arc<AnswerMemo>,
    /// Its budget and stop signal.
    pub control: QueryControl,
    /// Its metrics, one entry per AI function.
    pub metrics: Arc<QueryMetrics>,
    /// Only estimating: nothing is sent.
    pub dry_run: bool,
    pack_controls: Mutex<HashMap<String, Arc<PackControl>>>,
}

impl QueryState {
    /// The pack size control of the call described by `call`, shared by the query's
    /// partitions.
    pub(crate) fn pack_control(&self, call: &str) -> Arc<PackControl> {
        let mut controls = self.pack_controls.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(controls.entry(call.to_string()).or_default())
    }
}

/// Marks a session state whose AI operators only estimate: answers come from the
/// response cache or are NULL, nothing is sent, and the counts go to [`Self::query`].
#[derive(Debug)]
pub struct DryRun {
    query: Arc<QueryMetrics>,
}

impl DryRun {
    /// A dry run counting into `query`.
    pub fn new(query: Arc<QueryMetrics>) -> Self {
        Self { query }
    }

    /// Where the dry run's counts go.
    pub fn query(&self) -> &Arc<QueryMetrics> {
        &self.query
    }
}
