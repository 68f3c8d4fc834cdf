//! Running SQL statement by statement, the ground that `blossom`'s scripts, its shell
//! and `blossom convert` share: each statement's result printed, its progress and
//! summary shown, and its outcome recorded in the [`Run`] (the run report and
//! `--max-failed-rows`).
//!
//! Ctrl-C or SIGTERM during a statement ends the run with exit code 130 or 143. A
//! statement over bounded inputs is cancelled at once. One over a streaming source
//! (an unbounded plan) first has its sources stop reading
//! ([`StreamStats::stop_sources`]); then, as `blossom.on_interrupt` says, its calls in
//! flight are answered and its sink flushed as the stream ends (`finish`), or dropped
//! (`abandon`, or a second Ctrl-C).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use datafusion::common::{DataFusionError, Result};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::dialect_from_str;

use super::args::PrintOptions;
use super::error::CliError;
use super::live::{LiveSources, stream_summary};
use super::print::print_stream;
use super::progress::{StatementProgress, summary, worker_summary};
use super::report::{RunReport, StatementReport, StreamReport, unix_seconds};
use super::signal::{Interrupt, Signals};
use crate::BlossomOptions;
use crate::config::OnInterrupt;
use crate::observe::{PerWorker, StatsSnapshot, StreamStats};
use crate::redact::redact_sql;

/// Runs every statement of `sql` in order on `ctx`, printing each result to `out`,
/// showing progress and a summary on stderr (unless quiet), and recording each in
/// `run`. Stops at the first failing statement.
///
/// ```no_run
/// # async fn f(ctx: datafusion::prelude::SessionContext) -> Result<(), blossom_sql::cli::CliError> {
/// use blossom_sql::cli::{MaxRows, OutputFormat, PrintOptions, Run, run_sql};
/// let options = PrintOptions {
///     format: OutputFormat::Csv, maxrows: MaxRows::Unlimited, quiet: true, progress: false,
/// };
/// let mut run = Run::new(None, None);
/// let sql = "SET blossom.max_concurrency = 8; SELECT sentiment('great!') AS s;";
/// run_sql(&ctx, sql, &options, &mut std::io::stdout(), &mut run).await?;
/// # Ok(()) }
/// ```
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    options: &PrintOptions,
    out: &mut dyn Write,
    run: &mut Run,
) -> Result<(), CliError> {
    let state = ctx.state();
    let configured = state.config().options().sql_parser.dialect;
    let dialect = dialect_from_str(configured)
        .ok_or_else(|| CliError::usage(format!("unsupported SQL dialect: {configured}")))?;
    let statements = DFParser::parse_sql_with_dialect(sql, dialect.as_ref())?;
    for statement in statements {
        let text = statement.to_string();
        let mut progress = StatementProgress::start(ctx, !options.quiet, options.progress);
        let (result, interrupt) = execute(ctx, statement, options, out, &mut progress, run).await;
        let (ai, workers, elapsed) = progress.finish();
        let no_cache = cache_unavailable(ctx, &ai);
        if !options.quiet {
            if let Some(line) = summary(&ai, elapsed, no_cache.as_deref()) {
                eprintln!("blossom: {line}");
            }
            if let Some(line) = worker_summary(&workers) {
                eprintln!("blossom: {line}");
            }
            if let Some(stream) = run.stream.as_ref().filter(|_| run.streaming) {
                eprintln!("blossom: {}", stream_summary(&stream.snapshot()));
            }
        }
        run.streaming = false;
        if let Some(stream) = run.stream.as_ref().filter(|s| s.sources_stopped()) {
            // The stopped statement has ended: the shell's next one reads again.
            stream.resume_sources();
        }
        run.record(text, elapsed, ai, workers, &result, interrupt.is_some());
        run.cache_unavailable = run.cache_unavailable.take().or(no_cache);
        if let Some(interrupt) = interrupt {
            return Err(interrupt.error());
        }
        result.map_err(CliError::from)?;
        run.check_limits()?;
    }
    Ok(())
}

/// Why the response cache could not be used, when a statement paid for answers
/// without it.
fn cache_unavailable(ctx: &SessionContext, ai: &StatsSnapshot) -> Option<String> {
    if ai.uncached_answers == 0 {
        return None;
    }
    crate::observe::session_stats(ctx).and_then(|stats| stats.cache_unavailable())
}

/// Runs one statement, printing its rows, until it ends or a signal stops it (the
/// signal is returned beside the statement's result).
async fn execute(
    ctx: &SessionContext,
    statement: datafusion::sql::parser::Statement,
    options: &PrintOptions,
    out: &mut dyn Write,
    progress: &mut StatementProgress,
    run: &mut Run,
) -> (Result<u64>, Option<Interrupt>) {
    // Listening from the start: a Ctrl-C between two awaits below is not lost.
    let mut signals = Signals::new();
    let planned = async {
        let plan = ctx.state().statement_to_plan(statement).await?;
        let frame = ctx.execute_logical_plan(plan).await?;
        let task = Arc::new(frame.task_ctx());
        Ok::<_, DataFusionError>((frame.create_physical_plan().await?, task))
    };
    let (plan, task) = tokio::select! {
        planned = planned => match planned {
            Ok(planned) => planned,
            Err(e) => return (Err(e), None),
        },
        interrupt = signals.next() => return (Err(cancelled(interrupt)), Some(interrupt)),
    };
    let streaming = is_unbounded(plan.as_ref());
    let sources = LiveSources::of(ctx);
    if streaming {
        run.streaming = true;
        run.stream = sources.stream().cloned();
        progress.streaming(sources.clone(), sources.last_query_id());
    }
    let printing = async { print_stream(execute_stream(plan, task)?, options, out).await };
    tokio::pin!(printing);
    let first = tokio::select! {
        result = &mut printing => return (result, None),
        interrupt = signals.next() => interrupt,
    };
    let stream = sources.stream().filter(|_| streaming);
    let Some(stream) = stream else {
        // Bounded inputs: the statement is dropped, which cancels it.
        return (Err(cancelled(first)), Some(first));
    };
    stream.stop_sources();
    let on_interrupt = ctx
        .state()
        .config()
        .options()
        .extensions
        .get::<BlossomOptions>()
        .map(|o| o.on_interrupt)
        .unwrap_or_default();
    if on_interrupt == OnInterrupt::Abandon {
        if !options.quiet {
            eprintln!(
                "blossom: {}: the sources stopped reading; the calls in flight are abandoned \
                 (blossom.on_interrupt = 'abandon')",
                first.why
            );
        }
        return (Err(cancelled(first)), Some(first));
    }
    if !options.quiet {
        eprintln!(
            "blossom: {}: the sources stopped reading; finishing the calls in flight \
             (Ctrl-C again abandons them)",
            first.why
        );
    }
    tokio::select! {
        result = &mut printing => (result, Some(first)),
        second = signals.next() => {
            if !options.quiet {
                eprintln!("blossom: {} again: the calls in flight are abandoned", second.why);
            }
            (Err(cancelled(second)), Some(first))
        }
    }
}

/// The error of a statement a signal cancelled.
fn cancelled(interrupt: Interrupt) -> DataFusionError {
    DataFusionError::Execution(format!("{}: the statement was cancelled", interrupt.why))
}

/// Whether any operator of `plan` reads without end (a streaming source).
fn is_unbounded(plan: &dyn ExecutionPlan) -> bool {
    plan.properties().boundedness.is_unbounded()
        || plan
            .children()
            .into_iter()
            .any(|child| is_unbounded(child.as_ref()))
}

/// The state of one `blossom` run: the statements so far, for the report and limits.
#[derive(Debug)]
pub struct Run {
    report_path: Option<PathBuf>,
    max_failed_rows: Option<u64>,
    started: SystemTime,
    clock: Instant,
    statements: Vec<StatementReport>,
    /// Why the response cache could not be used, once a statement paid without it.
    cache_unavailable: Option<String>,
    /// The session's streaming counters, once a statement read a streaming source.
    stream: Option<Arc<StreamStats>>,
    /// Whether the statement running reads a streaming source.
    streaming: bool,
}

impl Run {
    /// A run writing its report to `report_path` (if any) and failing with exit code 3
    /// past `max_failed_rows` failed rows.
    pub fn new(report_path: Option<PathBuf>, max_failed_rows: Option<u64>) -> Self {
        Self {
            report_path,
            max_failed_rows,
            started: SystemTime::now(),
            clock: Instant::now(),
            statements: Vec::new(),
            cache_unavailable: None,
            stream: None,
            streaming: false,
        }
    }

    /// Records one statement's outcome.
    pub fn record(
        &mut self,
        sql: String,
        elapsed: std::time::Duration,
        ai: StatsSnapshot,
        workers: PerWorker,
        result: &Result<u64>,
        interrupted: bool,
    ) {
        self.statements.push(StatementReport {
            index: self.statements.len() + 1,
            // A key set with SQL never reaches the report.
            sql: redact_sql(&sql).into_owned(),
            status: match result {
                _ if interrupted => "interrupted",
                Ok(_) => "ok",
                Err(e) if super::error::is_output_closed(e) => "output_closed",
                Err(_) => "failed",
            },
            elapsed_ms: elapsed.as_millis() as u64,
            rows: *result.as_ref().unwrap_or(&0),
            cost: ai.cost(),
            ai,
            workers,
            error: result
                .as_ref()
                .err()
                .map(|e| redact_sql(&e.to_string()).into_owned()),
        });
    }

    /// Everything the run's AI calls did so far.
    pub fn ai_totals(&self) -> StatsSnapshot {
        self.statements
            .iter()
            .fold(StatsSnapshot::default(), |total, s| total.plus(&s.ai))
    }

    /// What each worker of a cluster did in the run so far.
    pub fn worker_totals(&self) -> PerWorker {
        let mut totals = PerWorker::new();
        for (worker, ai) in self.statements.iter().flat_map(|s| &s.workers) {
            let total = totals.entry(worker.clone()).or_default();
            *total = total.plus(ai);
        }
        totals
    }

    /// Fails when the run has more failed rows than allowed.
    pub fn check_limits(&self) -> Result<(), CliError> {
        let failed = self.ai_totals().failed_rows;
        match self.max_failed_rows {
            Some(max) if failed > max => Err(CliError::limit(format!(
                "{failed} rows failed, more than --max-failed-rows {max}"
            ))),
            _ => Ok(()),
        }
    }

    /// Ends the run: writes the report (if asked) and returns the run's outcome. A
    /// closed stdout is a normal end.
    pub fn finish(self, result: Result<(), CliError>) -> Result<(), CliError> {
        let result = match result {
            Err(e) if e.is_output_closed() => Ok(()),
            other => other,
        };
        if let Some(path) = &self.report_path {
            let report = RunReport {
                status: match &result {
                    Ok(()) => "ok",
                    Err(e) if super::signal::is_interrupt(e.code) => "interrupted",
                    Err(_) => "failed",
                },
                exit_code: result.as_ref().err().map_or(0, |e| e.code),
                started_at_unix: unix_seconds(self.started),
                elapsed_ms: self.clock.elapsed().as_millis() as u64,
                ai: self.ai_totals(),
                workers: self.worker_totals(),
                cost: self.ai_totals().cost(),
                statements: self.statements.clone(),
                stream: self
                    .stream
                    .as_ref()
                    .map(|s| StreamReport::from(s.snapshot())),
                cache_unavailable: self.cache_unavailable.as_ref().map(|why| {
                    format!(
                        "{why}; {} answers were paid for without it",
                        self.ai_totals().uncached_answers
                    )
                }),
                error: result.as_ref().err().map(|e| e.message.clone()),
            };
            report.write(path)?;
        }
        result
    }
}
