//! The entry point for Rust programs: [`BlossomSessionBuilder`] returns a DataFusion
//! `SessionContext` with every AI function registered and the provider configured.

use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider,
};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use async_trait::async_trait;
use datafusion::execution::SessionState;
use datafusion_distributed::{
    DistributedExt, SessionStateBuilderExt, WorkerQueryContext, WorkerSessionBuilder,
};
use tonic::codegen::http::HeaderMap;

use crate::cluster::{AiStages, ClusterPlanner, TokenChannels, Workers, options_from_headers};
use crate::cluster_token::ClusterToken;
use crate::config::{ApiKey, BlossomOptions};
use crate::dispatch::{Dispatcher, LimiterServer};
use crate::estimate::EstimateTable;
use crate::execution::{AiExecCodec, AiServices};
use crate::file_tables::{FileTableCatalogList, FileTables};
use crate::functions;
use crate::observe::{ErrorLog, ErrorsTable, MetricsLog, MetricsTable, SessionStats, StreamStats};
use crate::planning::{Coordinator, LiftAiCalls, PlanAiCalls};
use crate::sim::Simulator;
use crate::streaming::NdjsonTableFactory;

/// The model name sessions ask the simulator for.
const SIMULATOR_MODEL: &str = "blossom-sim";

/// Builds a `SessionContext` in which AI functions run as SQL.
///
/// ```no_run
/// # async fn run() -> datafusion::common::Result<()> {
/// use blossom_sql::BlossomSessionBuilder;
///
/// let ctx = BlossomSessionBuilder::from_env()?
///     .with_option("max_concurrency", "16")?
///     .build()?;
/// ctx.sql("SELECT id, sentiment(text) AS s FROM 'data/reviews.csv' WHERE lang = 'en'")
///     .await?
///     .show()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BlossomSessionBuilder {
    options: BlossomOptions,
    config: SessionConfig,
    token: Option<ClusterToken>,
}

impl Default for BlossomSessionBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlossomSessionBuilder {
    /// Built-in defaults only (Pollinations, no key); the environment is not read.
    pub fn new() -> Self {
        Self {
            options: BlossomOptions::default(),
            config: SessionConfig::new(),
            token: None,
        }
    }

    /// Defaults overridden by `BLOSSOM_PROVIDER`, `BLOSSOM_BASE_URL`, `BLOSSOM_MODEL`,
    /// `BLOSSOM_API_KEY` and `POLLINATIONS_API_KEY`.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            options: BlossomOptions::from_env()?,
            config: SessionConfig::new(),
            token: None,
        })
    }

    /// Sets a `blossom.*` option by name, without the prefix, exactly as
    /// `SET blossom.<key> = '<value>'` would.
    pub fn with_option(mut self, key: &str, value: &str) -> Result<Self> {
        self.options.set_option(key, value)?;
        Ok(self)
    }

    /// Sends requests to an OpenAI-compatible server at `base_url`
    /// (e.g. `http://localhost:11434/v1`).
    pub fn with_base_url(self, base_url: &str) -> Result<Self> {
        self.with_option("base_url", base_url)
    }

    /// Asks for `model`.
    pub fn with_model(self, model: &str) -> Result<Self> {
        self.with_option("model", model)
    }

    /// Sends requests to the bundled simulator `sim` (its model, no key): answers are
    /// simulated, not a language model's.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use blossom_sql::BlossomSessionBuilder;
    /// use blossom_sql::sim::{SimConfig, Simulator};
    /// let sim = Simulator::start(SimConfig::default()).await?;
    /// let ctx = BlossomSessionBuilder::new().with_simulator(&sim)?.build()?;
    /// ctx.sql("SELECT sentiment('I love it')").await?.show().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_simulator(self, sim: &Simulator) -> Result<Self> {
        self.with_option("provider", "custom")?
            .with_base_url(&sim.base_url())?
            .with_model(SIMULATOR_MODEL)?
            .with_option("api_key", "")
    }

    /// Authenticates with `key`.
    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.options.api_key = key;
        self
    }

    /// Starts from these DataFusion settings instead of the defaults.
    pub fn with_session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Makes the session a coordinator of the `blossom worker` processes in `list`
    /// (`host:port` entries separated by commas): the stages of a query that hold AI
    /// calls run on them. Empty: a session of one process.
    ///
    /// ```no_run
    /// # fn f() -> datafusion::common::Result<()> {
    /// use blossom_sql::BlossomSessionBuilder;
    /// // BLOSSOM_CLUSTER_TOKEN is the token the workers were started with.
    /// let ctx = BlossomSessionBuilder::from_env()?
    ///     .with_workers("10.0.0.11:50051,10.0.0.12:50051")?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn with_workers(self, list: &str) -> Result<Self> {
        self.with_option("workers", list)
    }

    /// The token a coordinator presents to its workers, instead of
    /// `BLOSSOM_CLUSTER_TOKEN`.
    pub fn with_cluster_token(mut self, token: ClusterToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The options the session will start with.
    pub fn options(&self) -> &BlossomOptions {
        &self.options
    }

    /// The session: DataFusion's defaults, `information_schema`, the `blossom.*`
    /// options, every AI function, and the rule that runs them concurrently.
    pub fn build(self) -> Result<SessionContext> {
        let shared = Shared::new()?;
        let workers = crate::cluster::parse_workers(self.options.workers.as_deref().unwrap_or(""))?;
        let coordinator = match workers.is_empty() {
            true => None,
            false => {
                let token = match self.token {
                    Some(token) => token,
                    None => ClusterToken::from_env().map_err(|e| {
                        DataFusionError::Configuration(format!(
                            "a session with workers needs the cluster's token: {e}"
                        ))
                    })?,
                };
                Some((Workers::new(workers), TokenChannels::new(&token)?, token))
            }
        };
        let mut options = self.options;
        // The coordinator hosts the cluster's limiter: every worker takes its slots
        // and its starts from it, so the caps are the cluster's (dispatch::cluster_limits).
        let limiter = match &coordinator {
            Some((_, _, token)) => {
                let limiter = start_limiter(token.clone())?;
                options.set_option("cluster_limiter", &limiter.url())?;
                // The workers' reports of their work are this session's metrics.
                limiter.report_to(Arc::clone(&shared.metrics), Arc::clone(&shared.stats));
                Some(Arc::new(limiter))
            }
            None => None,
        };
        let mut config = shared.attach(
            self.config
                .with_information_schema(true)
                .with_option_extension(options.clone()),
        );
        if let Some(limiter) = limiter {
            // Only a coordinator has a limiter: its planner runs over blossom.workers.
            config = config
                .with_extension(limiter)
                .with_extension(Arc::new(Coordinator));
        }
        // The AI rule runs first, before DataFusion's rules can push projections
        // (and the AI calls in them) into file scans.
        let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
            vec![Arc::new(PlanAiCalls::new())];
        rules.extend(PhysicalOptimizer::new().rules);
        // Lets queries name files directly: SELECT ... FROM 'data/reviews.csv', but only
        // names that look like paths (a table named data never reads a data/ folder).
        let files = Arc::new(FileTables::default());
        let catalogs = FileTableCatalogList::new(default_catalogs(&config)?, Arc::clone(&files));
        // The default catalog exists already: a state rebuilt from this one with its
        // config (as blossom_estimate's dry run is) must not replace it, and its tables.
        let config = config.with_create_default_catalog_and_schema(false);
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_catalog_list(Arc::new(catalogs))
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .with_query_planner(Arc::new(LiftAiCalls));
        // Before DataFusion's own: SQL parses extract(text, 'schema'), the compatible
        // spelling of ai_extract(), as EXTRACT.
        if let Some(planners) = builder.expr_planners() {
            planners.insert(0, Arc::new(functions::ExtractPlanner::default()));
        }
        // STORED AS NDJSON with a stream's location reads the stream; other locations
        // stay DataFusion's.
        if let Some(factories) = builder.table_factories()
            && let Some(fallback) = factories.get("NDJSON").cloned()
        {
            factories.insert(
                "NDJSON".to_string(),
                Arc::new(NdjsonTableFactory::new(fallback)),
            );
        }
        if let Some((workers, channels, _)) = coordinator {
            builder = builder
                .with_distributed_worker_resolver(workers.clone())
                .with_distributed_channel_resolver(channels.clone())
                .with_distributed_planner()
                .with_distributed_option_extension(options)
                .with_distributed_user_codec(AiExecCodec)
                .with_distributed_desired_task_count_handler(AiStages);
            if let Some(distributed) = builder.query_planner().take() {
                builder = builder.with_query_planner(Arc::new(ClusterPlanner::new(
                    distributed,
                    channels,
                    workers,
                )));
            }
        }
        let state = builder.build();
        let ctx = SessionContext::new_with_state(state);
        files.attach(&ctx);
        for udf in functions::udfs() {
            ctx.register_udf(udf);
        }
        ctx.register_udtf("blossom_errors", Arc::new(ErrorsTable::new(shared.errors)));
        ctx.register_udtf(
            "blossom_metrics",
            Arc::new(MetricsTable::new(shared.metrics)),
        );
        ctx.register_udtf("blossom_estimate", Arc::new(EstimateTable));
        Ok(ctx)
    }
}

/// The environment variable naming the address the coordinator's limiter listens on
/// (default `127.0.0.1:0`); on several hosts, an address the workers reach.
pub const LIMITER_LISTEN_ENV: &str = "BLOSSOM_LIMITER_LISTEN";

/// Starts the cluster's limiter for a coordinator session.
fn start_limiter(token: ClusterToken) -> Result<LimiterServer> {
    let listen = std::env::var(LIMITER_LISTEN_ENV).unwrap_or_else(|_| "127.0.0.1:0".to_string());
    let failed = |e: std::io::Error| {
        DataFusionError::Configuration(format!(
            "the coordinator cannot serve the cluster's limiter on {listen} \
             ({LIMITER_LISTEN_ENV}): {e}"
        ))
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(DataFusionError::Configuration(
            "a session with workers must be built within a tokio runtime".to_string(),
        ));
    }
    let listener = std::net::TcpListener::bind(listen.as_str()).map_err(failed)?;
    LimiterServer::start_on(listener, token).map_err(failed)
}

/// What the AI operators of a session share, made once per session (once per process
/// for a worker, whose every query is a session of its own).
#[derive(Clone)]
struct Shared {
    stats: Arc<SessionStats>,
    errors: Arc<ErrorLog>,
    metrics: Arc<MetricsLog>,
    services: Arc<AiServices>,
    streams: Arc<StreamStats>,
}

impl Shared {
    fn new() -> Result<Self> {
        let stats = Arc::new(SessionStats::default());
        let errors = Arc::new(ErrorLog::default());
        let metrics = Arc::new(MetricsLog::default());
        let dispatcher = Dispatcher::new(Arc::clone(&stats))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // What AI operators run with, taken from the session at execute time.
        let services = Arc::new(AiServices::new(
            Arc::new(dispatcher),
            Arc::clone(&errors),
            Arc::clone(&metrics),
            Arc::clone(&stats),
        ));
        Ok(Self {
            stats,
            errors,
            metrics,
            services,
            streams: Arc::new(StreamStats::default()),
        })
    }

    /// `config` with these as its extensions.
    fn attach(&self, config: SessionConfig) -> SessionConfig {
        config
            .with_extension(Arc::clone(&self.stats))
            .with_extension(Arc::clone(&self.errors))
            .with_extension(Arc::clone(&self.metrics))
            .with_extension(Arc::clone(&self.services))
            .with_extension(Arc::clone(&self.streams))
    }
}

/// The sessions of a `blossom worker`: one per plan fragment, each with every AI
/// function, the operators' codec, the worker's own options (its provider key from its
/// environment) overridden by the coordinator's settings, and the services of the
/// worker's process (one dispatcher: one set of limits, one cache, for every query).
pub struct BlossomWorkerSessions {
    base: BlossomOptions,
    shared: Shared,
    channels: TokenChannels,
}

impl std::fmt::Debug for BlossomWorkerSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlossomWorkerSessions")
            .finish_non_exhaustive()
    }
}

impl BlossomWorkerSessions {
    /// Sessions starting from `builder`'s options; calls to other workers (a stage
    /// reading another's output) present `token`.
    pub fn new(builder: &BlossomSessionBuilder, token: &ClusterToken) -> Result<Self> {
        let mut base = builder.options.clone();
        // A worker plans for no one: a BLOSSOM_WORKERS in its environment means nothing.
        base.workers = None;
        Ok(Self {
            base,
            shared: Shared::new()?,
            channels: TokenChannels::new(token)?,
        })
    }

    /// The session of one plan fragment: DataFusion's state as the worker service made
    /// it, with blossom's functions, codec, options and services.
    pub fn state(&self, builder: SessionStateBuilder, headers: &HeaderMap) -> Result<SessionState> {
        let options = options_from_headers(&self.base, headers)?;
        let mut builder = builder;
        let config = builder.config().take().unwrap_or_default();
        let config = self.shared.attach(config.with_option_extension(options));
        let mut builder = builder
            .with_config(config)
            .with_distributed_user_codec(AiExecCodec)
            .with_distributed_channel_resolver(self.channels.clone());
        // Appended: with_scalar_functions would replace DataFusion's own.
        builder
            .scalar_functions()
            .get_or_insert_default()
            .extend(functions::udfs().into_iter().map(Arc::new));
        Ok(builder.build())
    }
}

#[async_trait]
impl WorkerSessionBuilder for BlossomWorkerSessions {
    async fn build_session_state(&self, ctx: WorkerQueryContext) -> Result<SessionState> {
        self.state(ctx.builder, &ctx.headers)
    }
}

/// A catalog list holding the default catalog and schema (`datafusion.public`, or as
/// `config` names them), as DataFusion creates them.
fn default_catalogs(config: &SessionConfig) -> Result<Arc<dyn CatalogProviderList>> {
    let options = &config.options().catalog;
    let schema = MemoryCatalogProvider::new();
    schema.register_schema(
        &options.default_schema,
        Arc::new(MemorySchemaProvider::new()),
    )?;
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(options.default_catalog.clone(), Arc::new(schema));
    Ok(Arc::new(catalogs))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Int64Array};

    use super::*;

    async fn count(ctx: &SessionContext, sql: &str) -> Result<i64> {
        let batches = ctx.sql(sql).await?.collect().await?;
        let column = batches[0].column(0);
        let counts = column
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a count");
        Ok(counts.value(0))
    }

    #[tokio::test]
    async fn a_table_named_like_a_folder_is_a_table() -> Result<()> {
        let ctx = BlossomSessionBuilder::new().build()?;
        // The repository (the working directory of tests) has a data/ folder.
        assert!(std::path::Path::new("data").is_dir());
        let e = ctx
            .sql("SELECT count(*) FROM data")
            .await
            .expect_err("no table");
        assert!(
            e.to_string()
                .contains("table 'datafusion.public.data' not found"),
            "{e}"
        );
        ctx.sql("CREATE TABLE data AS VALUES (1), (2), (3)")
            .await?
            .collect()
            .await?;
        assert_eq!(count(&ctx, "SELECT count(*) FROM data").await?, 3);
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM 'data/reviews.csv'").await?,
            300
        );
        Ok(())
    }

    #[tokio::test]
    async fn enable_url_table_is_harmless() -> Result<()> {
        let ctx = BlossomSessionBuilder::new().build()?.enable_url_table();
        ctx.sql("CREATE TABLE t AS VALUES (1), (2)")
            .await?
            .collect()
            .await?;
        assert_eq!(count(&ctx, "SELECT count(*) FROM t").await?, 2);
        assert_eq!(
            count(&ctx, "SELECT count(*) FROM 'data/reviews.csv'").await?,
            300
        );
        assert_eq!(count(&ctx, "SELECT count(sentiment(NULL))").await?, 0);
        // DataFusion's own wrapper, now outermost, refuses DROP SCHEMA as it does on a
        // plain session with URL tables; without it, DROP SCHEMA works (files.slt).
        Ok(())
    }
}
