//! Running `blossom`: building the session from the environment and flags, starting the
//! simulator when asked, and executing SQL text statement by statement.

use std::io::{IsTerminal, Read, Write};

use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::dialect_from_str;

use super::args::{Args, OutputFormat};
use super::print::print_stream;
use crate::BlossomSessionBuilder;
use crate::sim::{SimConfig, Simulator};

/// Runs `blossom` with parsed arguments, printing results to stdout and notices to
/// stderr. Returns the error of the first statement that fails.
pub async fn run(args: Args) -> Result<()> {
    let mut builder = BlossomSessionBuilder::from_env()?;
    for (key, value) in args.options() {
        builder = builder.with_option(key, value).map_err(|e| {
            DataFusionError::Configuration(format!("--{}: {e}", key.replace('_', "-")))
        })?;
    }
    // Kept alive until the statements have run.
    let _simulator = if args.simulate {
        let config = SimConfig {
            latency: std::time::Duration::from_millis(args.sim_latency_ms),
            ..SimConfig::default()
        };
        let sim = Simulator::start(config)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        builder = builder
            .with_option("provider", "custom")?
            .with_option("base_url", &sim.base_url())?
            .with_option("model", "blossom-sim")?
            .with_option("api_key", "")?;
        if !args.quiet {
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
    let ctx = builder.build()?;

    let mut scripts: Vec<String> = args.commands.clone();
    for file in &args.files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            DataFusionError::Execution(format!("cannot read SQL file {}: {e}", file.display()))
        })?;
        scripts.push(text);
    }
    if scripts.is_empty() {
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err(DataFusionError::Plan(
                "nothing to run: give SQL with -c, a file with -f, or pipe SQL on stdin"
                    .to_string(),
            ));
        }
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| DataFusionError::Execution(format!("cannot read SQL from stdin: {e}")))?;
        scripts.push(text);
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for script in &scripts {
        run_sql(&ctx, script, args.format, &mut out).await?;
    }
    out.flush()
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// Runs every statement of `sql` in order on `ctx`, printing each result to `out`.
///
/// ```no_run
/// # async fn f(ctx: datafusion::prelude::SessionContext) -> datafusion::common::Result<()> {
/// use blossom_sql::cli::{OutputFormat, run_sql};
/// let sql = "SET blossom.max_concurrency = 8; SELECT sentiment('great!') AS s;";
/// run_sql(&ctx, sql, OutputFormat::Csv, &mut std::io::stdout()).await?;
/// # Ok(()) }
/// ```
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let state = ctx.state();
    let configured = state.config().options().sql_parser.dialect;
    let dialect = dialect_from_str(configured).ok_or_else(|| {
        DataFusionError::Configuration(format!("unsupported SQL dialect: {configured}"))
    })?;
    let statements = DFParser::parse_sql_with_dialect(sql, dialect.as_ref())?;
    for statement in statements {
        let plan = ctx.state().statement_to_plan(statement).await?;
        let frame = ctx.execute_logical_plan(plan).await?;
        let stream = frame.execute_stream().await?;
        print_stream(stream, format, out).await?;
    }
    Ok(())
}
