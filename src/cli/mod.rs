//! The `blossom` command line, as a library (the binary is a thin `main`): arguments,
//! running SQL statement by statement with progress and a run report, the interactive
//! shell, file conversions, and printing results.

mod args;
mod convert;
mod error;
mod exec;
mod live;
mod print;
mod progress;
mod repl;
mod report;
mod run;
mod signal;
mod worker;

pub use args::{
    Args, Command, ConvertArgs, FileFormat, MaxRows, OutputFormat, PrintOptions, ProviderArgs,
    WorkerArgs,
};
pub use error::{CliError, EXIT_LIMIT, EXIT_OK, EXIT_QUERY, EXIT_USAGE};
pub use exec::{run, session};
pub use print::{OutputClosed, print_stream};
pub use report::{RunReport, StatementReport, StreamReport};
pub use run::{Run, run_sql};
pub use signal::{EXIT_INTERRUPTED, EXIT_TERMINATED};
