//! The run report written by `--report run.json`, for orchestrators: overall status and
//! exit code, and per statement its SQL, timing, rows, AI metrics and error. The path
//! is checked to be writable before anything runs.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::CliError;
use crate::observe::{PerWorker, StatsSnapshot, StreamSnapshot};

/// One statement of the run.
#[derive(Debug, Clone, Serialize)]
pub struct StatementReport {
    /// 1-based position in the run.
    pub index: usize,
    /// The statement's SQL.
    pub sql: String,
    /// `ok`, `failed`, `interrupted` (Ctrl-C or SIGTERM stopped it), or
    /// `output_closed` (its reader closed stdout before every row was printed, e.g.
    /// `| head -1`: the statement stopped there).
    pub status: &'static str,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
    /// Rows the statement returned.
    pub rows: u64,
    /// What its AI calls did.
    pub ai: StatsSnapshot,
    /// On a cluster's coordinator, what they did on each worker, by worker name (left
    /// out elsewhere).
    #[serde(skip_serializing_if = "PerWorker::is_empty")]
    pub workers: PerWorker,
    /// What its AI calls cost in USD, at the models' prices; `null` when a model's
    /// price is unknown (see `blossom.price_input`).
    pub cost: Option<f64>,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// The whole run, as written to the report file.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `ok`, `failed` or `interrupted`.
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
    /// On a cluster's coordinator, what they did on each worker (left out elsewhere).
    #[serde(skip_serializing_if = "PerWorker::is_empty")]
    pub workers: PerWorker,
    /// What the session's streaming sources and sinks did; left out when no statement
    /// read a streaming source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamReport>,
    /// What the run's AI calls cost in USD; `null` when a model's price is unknown.
    pub cost: Option<f64>,
    /// When the response cache could not be used: why, and how many answers were paid
    /// for without it (`ai.uncached_answers`).
    pub cache_unavailable: Option<String>,
    /// The error that ended the run, if any.
    pub error: Option<String>,
}

/// The streaming counters of the run (see [`crate::observe::StreamStats`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StreamReport {
    /// Records read from sources.
    pub records_in: u64,
    /// Records sinks delivered.
    pub delivered: u64,
    /// Lines of sources that were no record.
    pub malformed: u64,
    /// Records written to dead-letter files.
    pub dead_lettered: u64,
    /// Connections of sources made again after a drop.
    pub reconnects: u64,
    /// Sink requests sent again after a failure.
    pub sink_retries: u64,
    /// Milliseconds from the session's start to the report.
    pub uptime_ms: u64,
}

impl From<StreamSnapshot> for StreamReport {
    fn from(s: StreamSnapshot) -> Self {
        Self {
            records_in: s.records_in,
            delivered: s.delivered,
            malformed: s.malformed,
            dead_lettered: s.dead_lettered,
            reconnects: s.reconnects,
            sink_retries: s.sink_retries,
            uptime_ms: s.uptime_ms,
        }
    }
}

/// Fails unless the report can be written at `path`: checked before the run, so that a
/// wrong path costs no request. A missing directory is made (as the statements would
/// make `out/` for their own files), an existing file is opened (not changed), and a
/// missing one is made and removed again.
pub fn check_writable(path: &Path) -> Result<(), CliError> {
    let cannot = |why: String| {
        CliError::usage(format!(
            "cannot write the report {}: {why}; nothing was run",
            path.display()
        ))
    };
    if path.is_dir() {
        return Err(cannot("it is a directory".to_string()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| cannot(e.to_string()))?;
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| cannot(e.to_string()));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| cannot(e.to_string()))?;
    std::fs::remove_file(path).map_err(|e| cannot(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_report_path_is_refused_and_a_writable_one_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").expect("write");
        let under_a_file = file.join("run.json");
        let error = check_writable(&under_a_file).expect_err("no directory can be made");
        assert_eq!(error.code, super::super::error::EXIT_USAGE);
        assert!(error.message.contains("run.json"), "{}", error.message);
        let error = check_writable(dir.path()).expect_err("a directory");
        assert!(
            error.message.contains("is a directory"),
            "{}",
            error.message
        );
        let fresh = dir.path().join("run.json");
        check_writable(&fresh).expect("writable");
        assert!(!fresh.exists(), "the check leaves no file");
        let nested = dir.path().join("out").join("run.json");
        check_writable(&nested).expect("its directory is made");
        assert!(nested.parent().expect("a parent").is_dir() && !nested.exists());
        std::fs::write(&fresh, "old").expect("write");
        check_writable(&fresh).expect("writable");
        assert_eq!(std::fs::read_to_string(&fresh).expect("read"), "old");
    }
}
