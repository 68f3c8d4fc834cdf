//! The run report written by `--report run.json`, for orchestrators: overall status and
//! exit code, and per statement its SQL, timing, rows, AI metrics and error.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::CliError;
use crate::stats::StatsSnapshot;

/// One statement of the run.
#[derive(Debug, Clone, Serialize)]
pub struct StatementReport {
    /// 1-based position in the run.
    pub index: usize,
    /// The statement's SQL.
    pub sql: String,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
    /// Rows the statement returned.
    pub rows: u64,
    /// What its AI calls did.
    pub ai: StatsSnapshot,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// The whole run, as written to the report file.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `ok` or `failed`.
    pub status: &'static str,
    /// The process exit code.
    pub exit_code: u8,
    /// When the run started, in seconds since the Unix epoch.
    pub started_at_unix: u64,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
    /// The statements, in order.
    pub statements: Vec<StatementReport>,
    /// Everything the run's AI calls did.
    pub ai: StatsSnapshot,
    /// The error that ended the run, if any.
    pub error: Option<String>,
}

impl RunReport {
    /// Writes the report as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<(), CliError> {
        let json = serde_json::to_string_pretty(self).map_err(CliError::query)?;
        std::fs::write(path, json + "\n").map_err(|e| {
            CliError::usage(format!("cannot write the report {}: {e}", path.display()))
        })
    }
}

pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
