//! The `blossom` command line, as a library (the binary is a thin `main`): arguments,
//! running SQL text statement by statement, and printing results.

mod args;
mod exec;
mod print;

pub use args::{Args, OutputFormat};
pub use exec::{run, run_sql};
pub use print::print_stream;
