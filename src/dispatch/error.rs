//! Why a call got no answer: the provider failed for good (the last error and how many
//! attempts were made), the query's budget would have been exceeded, or the query
//! stopped.

use std::fmt;

use std::sync::Arc;

use super::budget::BudgetExceeded;
use super::stop::StopReason;
use crate::provider::ProviderError;

/// A request that still failed after its retries (or was not retryable), or was not sent
/// because the query's budget would have been exceeded.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The provider failed for good.
    Failed {
        /// Attempts made, the first included.
        attempts: u32,
        /// The error of the last attempt.
        error: ProviderError,
    },
    /// The query's budget stops it; no row is to blame.
    OverBudget(BudgetExceeded),
    /// Not sent because the query is only being estimated (`blossom_estimate`).
    DryRun,
    /// Not answered because the query stopped: a row failed for good under
    /// `blossom.on_error = 'fail'`, the provider refused the account, or an outage
    /// lasted too long. No row is to blame for it.
    Stopped(Arc<StopReason>),
}

impl CallError {
    /// Attempts made.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Failed { attempts, .. } => *attempts,
            Self::OverBudget(_) | Self::DryRun | Self::Stopped(_) => 0,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { attempts, error } => {
                let plural = if *attempts == 1 { "" } else { "s" };
                write!(f, "{error} (after {attempts} attempt{plural})")
            }
            Self::OverBudget(exceeded) => exceeded.fmt(f),
            Self::DryRun => f.write_str("not sent: the query is only being estimated"),
            Self::Stopped(reason) => reason.fmt(f),
        }
    }
}

impl std::error::Error for CallError {}
