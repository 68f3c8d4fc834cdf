//! `blossom`: run SQL with LLM functions from the command line. All logic lives in
//! [`blossom_sql::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("blossom_sql=warn"));
    // The SQL parser's debug lines print every literal it reads, a key given with
    // `SET blossom.api_key = '...'` among them: they never show.
    if let Ok(quiet_parser) = "sqlparser=info".parse() {
        filter = filter.add_directive(quiet_parser);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = blossom_sql::cli::Args::parse();
    match blossom_sql::cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        // Its reader closed stdout (`blossom ... | head -1`): a normal end.
        Err(e) if e.is_output_closed() => ExitCode::SUCCESS,
        Err(e)
            if e.code == blossom_sql::cli::EXIT_INTERRUPTED
                || e.code == blossom_sql::cli::EXIT_TERMINATED =>
        {
            eprintln!("Error: {e}");
            // A source may still be blocked reading stdin on a thread the runtime would
            // wait for at its end: the run is over (report written), so exit now.
            let _ = std::io::Write::flush(&mut std::io::stdout());
            std::process::exit(i32::from(e.code))
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.code)
        }
    }
}
