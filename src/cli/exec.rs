//! Running `blossom`: the session from the environment and flags (with the simulator
//! when asked), then the subcommand, the SQL of -c/-f/stdin, or the interactive shell,
//! statement by statement with progress, summaries, limits and the run report.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::dialect_from_str;

use super::args::{Args, Command, PrintOptions, ProviderArgs};
use super::error::CliError;
use super::print::{is_broken_pipe, print_stream};
use super::progress::{StatementProgress, summary};
use super::report::{self, RunReport, StatementReport, unix_seconds};
use super::{convert, repl};
use crate::BlossomSessionBuilder;
use crate::config::configuration_message;
use crate::observe::StatsSnapshot;
use crate::redact::redact_sql;
use crate::sim::{SimConfig, Simulator};

/// Runs `blossom` with parsed arguments: results on stdout, progress and notices on
/// stderr, the report (if asked) written whatever happens.
pub async fn run(args: Args) -> Result<(), CliError> {
    // Before anything runs (and is paid for): the report must be writable.
    if let Some(path) = &args.report {
        report::check_writable(path)?;
    }
    let options = args.print_options();
    let (ctx, _simulator) = session(&args.provider, options.quiet).await?;
    let mut run = Run::new(args.report.clone(), args.max_failed_rows);
    let result = match &args.command {
        Some(Command::Convert(convert)) => convert::run(&ctx, convert, &options, &mut run).await,
        None => run_scripts(&ctx, &args, &options, &mut run).await,
    };
    run.finish(result)
}

async fn run_scripts(
    ctx: &SessionContext,
    args: &Args,
    options: &PrintOptions,
    run: &mut Run,
) -> Result<(), CliError> {
    let mut scripts: Vec<String> = args.commands.clone();
    for file in &args.files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            CliError::query(format!("cannot read SQL file {}: {e}", file.display()))
        })?;
        scripts.push(text);
    }
    if scripts.is_empty() {
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            return repl::run(ctx, options, run).await;
        }
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| CliError::query(format!("cannot read SQL from stdin: {e}")))?;
        scripts.push(text);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for script in &scripts {
        run_sql(ctx, script, options, &mut out, run).await?;
    }
    match out.flush() {
        Err(e) if is_broken_pipe(&e) => Err(CliError::output_closed()),
        Err(e) => Err(CliError::query(format!("cannot write to stdout: {e}"))),
        Ok(()) => Ok(()),
    }
}

/// The session the flags ask for, and the simulator it talks to with `--simulate`
/// (keep it alive as long as the session).
pub async fn session(
    provider: &ProviderArgs,
    quiet: bool,
) -> Result<(SessionContext, Option<Simulator>), CliError> {
    let mut builder = BlossomSessionBuilder::from_env().map_err(|e| CliError::setting(&e))?;
    for (key, value) in provider.options() {
        builder = builder.with_option(key, value).map_err(|e| {
            CliError::usage(format!(
                "--{}: {}",
                key.replace('_', "-"),
                configuration_message(&e)
            ))
        })?;
    }
    let simulator = if provider.simulate {
        let config = SimConfig {
            latency: std::time::Duration::from_millis(provider.sim_latency_ms),
            ..SimConfig::default()
        };
        let sim = Simulator::start(config)
            .await
            .map_err(|e| CliError::query(format!("cannot start the simulator: {e}")))?;
        builder = builder.with_simulator(&sim)?;
        if !quiet {
            eprintln!(
                "blossom: --simulate: answers come from the bundled simulator at {}, \
                 not from a language model",
                sim.base_url()
            );
        }
        Some(sim)
    } else {
        None
    };
    Ok((builder.build()?, simulator))
}

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
