//! The error of a request that failed for good: the last provider error and how many
//! attempts were made.

use std::fmt;

use crate::provider::ProviderError;

/// A request that still failed after its retries (or was not retryable).
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The error of the last attempt.
    pub error: ProviderError,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "{} (after {} attempt{plural})",
            self.error, self.attempts
        )
    }
}

impl std::error::Error for CallError {}
