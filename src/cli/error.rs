//! The errors `blossom` exits with, each with its exit code: 1 a query failed, 2 the
//! command line (or a setting from the environment) is wrong, 3 a limit was exceeded
//! (more failed rows than allowed, or a query's `blossom.max_requests` /
//! `blossom.max_tokens` budget). A closed stdout (`blossom ... | head -1`) is not an
//! error: it ends the run with exit code 0 and no message.

use std::fmt;

use datafusion::common::DataFusionError;

use super::print::OutputClosed;
use crate::dispatch::BudgetExceeded;

/// Exit code of a run that ended normally, also when its reader closed stdout early.
pub const EXIT_OK: u8 = 0;
/// Exit code of a failed query.
pub const EXIT_QUERY: u8 = 1;
/// Exit code of a usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of an exceeded limit (`--max-failed-rows`, budgets).
pub const EXIT_LIMIT: u8 = 3;

/// Why `blossom` stops, and the exit code that says so.
#[derive(Debug)]
pub struct CliError {
    /// The process exit code.
    pub code: u8,
    /// The message printed on stderr after `Error: `.
    pub message: String,
}

impl CliError {
    /// A query (or its input, or the provider) failed.
    pub fn query(error: impl fmt::Display) -> Self {
        Self {
            code: EXIT_QUERY,
            message: error.to_string(),
        }
    }

    /// The command line asks for something impossible.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A setting from the environment or a flag is wrong: a usage error, with
    /// DataFusion's "Invalid or Unsupported Configuration" prefix left out (the message
    /// names the variable or flag and the setting).
    pub fn setting(error: &DataFusionError) -> Self {
        Self::usage(crate::config::configuration_message(error))
    }

    /// Stdout was closed by its reader: the run ends, successfully and silently.
    pub fn output_closed() -> Self {
        Self {
            code: EXIT_OK,
            message: OutputClosed.to_string(),
        }
    }

    /// Whether this is the normal end of a run whose stdout was closed.
    pub fn is_output_closed(&self) -> bool {
        self.code == EXIT_OK
    }

    /// A limit set for the run was exceeded.
    pub fn limit(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_LIMIT,
            message: message.into(),
        }
    }
}

impl From<DataFusionError> for CliError {
    fn from(error: DataFusionError) -> Self {
        if is_output_closed(&error) {
            return Self::output_closed();
        }
        match over_budget(&error) {
            Some(exceeded) => Self::limit(exceeded.to_string()),
            None => Self::query(error),
        }
    }
}

/// The budget that stopped a query, wherever DataFusion wrapped it.
fn over_budget(error: &DataFusionError) -> Option<&BudgetExceeded> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(exceeded) = error.downcast_ref::<BudgetExceeded>() {
            return Some(exceeded);
        }
        current = error.source();
    }
    None
}

/// Whether `error` (wherever DataFusion wrapped it) says stdout was closed.
pub(crate) fn is_output_closed(error: &DataFusionError) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if error.downcast_ref::<OutputClosed>().is_some() {
            return true;
        }
        current = error.source();
    }
    false
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
