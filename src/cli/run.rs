//! Running SQL statement by statement, the ground that `blossom`'s scripts, its shell
//! and `blossom convert` share: each statement's result printed, its progress and
//! summary shown, and its outcome recorded in the [`Run`] (the run report and
//! `--max-failed-rows`).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::dialect_from_str;

use super::args::PrintOptions;
use super::error::CliError;
use super::print::print_stream;
use super::progress::{StatementProgress, summary};
use super::report::{RunReport, StatementReport, unix_seconds};
use crate::observe::StatsSnapshot;
use crate::redact::redact_sql;

/// Runs every statement of `sql` in order on `ctx`, printing each result to `out`,
/// showing progress and a summary on stderr (unless quiet), and recording each in
/// `run`. Stops at the first failing statement.
///
/// ```no_run
/// # async fn f(ctx: datafusion::prelude::SessionContext) -> Result<(), blossom_sql::cli::CliError> {
/// use blossom_sql::cli::{MaxRows, OutputFormat, PrintOptions, Run, run_sql};
/// let options = PrintOptions { format: OutputFormat::Csv, maxrows: MaxRows::Unlimited, quiet: true };
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
        let progress = StatementProgress::start(ctx, !options.quiet);
        let result = execute(ctx, statement, options, out).await;
        let (ai, elapsed) = progress.finish();
        let no_cache = cache_unavailable(ctx, &ai);
        if !options.quiet
            && let Some(line) = summary(&ai, elapsed, no_cache.as_deref())
        {
            eprintln!("blossom: {line}");
        }
        run.record(text, elapsed, ai, &result);
        run.cache_unavailable = run.cache_unavailable.take().or(no_cache);
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

async fn execute(
    ctx: &SessionContext,
    statement: datafusion::sql::parser::Statement,
    options: &PrintOptions,
    out: &mut dyn Write,
) -> Result<u64> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    let frame = ctx.execute_logical_plan(plan).await?;
    print_stream(frame.execute_stream().await?, options, out).await
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
        }
    }

    /// Records one statement's outcome.
    pub fn record(
        &mut self,
        sql: String,
        elapsed: std::time::Duration,
        ai: StatsSnapshot,
        result: &Result<u64>,
    ) {
        self.statements.push(StatementReport {
            index: self.statements.len() + 1,
            // A key set with SQL never reaches the report.
            sql: redact_sql(&sql).into_owned(),
            status: match result {
                Ok(_) => "ok",
                Err(e) if super::error::is_output_closed(e) => "output_closed",
                Err(_) => "failed",
            },
            elapsed_ms: elapsed.as_millis() as u64,
            rows: *result.as_ref().unwrap_or(&0),
            cost: ai.cost(),
            ai,
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
                status: if result.is_ok() { "ok" } else { "failed" },
                exit_code: result.as_ref().err().map_or(0, |e| e.code),
                started_at_unix: unix_seconds(self.started),
                elapsed_ms: self.clock.elapsed().as_millis() as u64,
                ai: self.ai_totals(),
                cost: self.ai_totals().cost(),
                statements: self.statements.clone(),
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
