//! Running `blossom`, the top of the command line: the session from the environment and
//! flags (with the simulator when asked), then the subcommand, the SQL of -c/-f/stdin,
//! or the interactive shell. Each of them runs its statements through [`super::run`],
//! which records them for the limits and the run report written at the end.

use std::io::{IsTerminal, Read, Write};

use datafusion::prelude::SessionContext;

use super::args::{Args, Command, PrintOptions, ProviderArgs};
use super::error::CliError;
use super::live::MetricsServer;
use super::print::is_broken_pipe;
use super::report;
use super::run::{Run, run_sql};
use super::{convert, repl};
use crate::BlossomSessionBuilder;
use crate::config::configuration_message;
use crate::sim::{SimConfig, Simulator};

/// Runs `blossom` with parsed arguments: results on stdout, progress and notices on
/// stderr, the report (if asked) written whatever happens.
pub async fn run(args: Args) -> Result<(), CliError> {
    // Before anything runs (and is paid for): the report must be writable.
    if let Some(path) = &args.report {
        report::check_writable(path)?;
    }
    let options = args.print_options();
    if let Some(Command::Worker(worker)) = &args.command {
        return super::worker::run(worker, &args.provider, options.quiet).await;
    }
    let (ctx, _simulator) = session(&args.provider, args.workers.as_deref(), options.quiet).await?;
    // Served until the run ends (dropped with it).
    let _metrics = match &args.metrics_addr {
        Some(addr) => {
            let server = MetricsServer::start(addr, &ctx).await?;
            if !options.quiet {
                eprintln!("blossom: metrics at http://{}/metrics", server.addr());
            }
            Some(server)
        }
        None => None,
    };
    let mut run = Run::new(args.report.clone(), args.max_failed_rows);
    let result = match &args.command {
        Some(Command::Convert(convert)) => convert::run(&ctx, convert, &options, &mut run).await,
        Some(Command::Worker(_)) => Ok(()),
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

/// The session the flags ask for (a coordinator of `workers`, if any), and the
/// simulator it talks to with `--simulate` (keep it alive as long as the session).
pub async fn session(
    provider: &ProviderArgs,
    workers: Option<&str>,
    quiet: bool,
) -> Result<(SessionContext, Option<Simulator>), CliError> {
    let (mut builder, simulator) = session_builder(provider, quiet).await?;
    if let Some(workers) = workers.filter(|w| !w.trim().is_empty()) {
        builder = builder
            .with_workers(workers)
            .map_err(|e| CliError::usage(format!("--workers: {}", configuration_message(&e))))?;
    }
    let ctx = builder
        .build()
        .map_err(|e| CliError::usage(configuration_message(&e)))?;
    Ok((ctx, simulator))
}

/// The session builder the provider flags ask for, and the simulator of `--simulate`.
pub(crate) async fn session_builder(
    provider: &ProviderArgs,
    quiet: bool,
) -> Result<(BlossomSessionBuilder, Option<Simulator>), CliError> {
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
    Ok((builder, simulator))
}
