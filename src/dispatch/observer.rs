//! [`CallObserver`]: what the dispatcher tells its caller about each attempt of a call,
//! so that the caller can keep per-query metrics and budgets without the dispatcher
//! knowing about queries.

use std::time::Duration;

use super::budget::{BudgetExceeded, QueryBudget, Reservation};
use super::stop::QueryStop;
use crate::provider::{ProviderError, TokenUsage};

/// Receives the events of one call's attempts. Every method has a do-nothing default.
/// blossom's per-query, per-function metrics implement it; they are what
///
/// ```sql
/// SELECT function, requests, retries, latency_p95_ms, throttled_ms FROM blossom_metrics();
/// ```
///
/// shows.
pub trait CallObserver: Send + Sync {
    /// The budget attempts are charged to, if any.
    fn budget(&self) -> Option<&QueryBudget> {
        None
    }

    /// The stop signal of the query the attempts belong to, if any: once it is given,
    /// no attempt is sent and those in flight are dropped.
    fn stop(&self) -> Option<&QueryStop> {
        None
    }

    /// Time an attempt waited for the rate limit or a provider-asked pause
    /// (`Retry-After`) before it could be sent.
    fn throttled(&self, _waited: Duration) {}

    /// An attempt came back after `latency`: answered (with the provider's token usage,
    /// when it reported one) or failed with `error`.
    fn attempt_finished(
        &self,
        _latency: Duration,
        _usage: Option<TokenUsage>,
        _error: Option<&ProviderError>,
    ) {
    }

    /// A failed attempt will be retried; `class` is its error class
    /// ([`ProviderError::class`]).
    fn retrying(&self, _class: &'static str) {}
}

/// An observer that records nothing and sets no budget.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl CallObserver for Unobserved {}

/// Reserves an attempt against the observer's budget, if it has one.
pub(crate) fn reserve(
    observer: &dyn CallObserver,
    prompt_chars: usize,
    max_answer_tokens: Option<u32>,
) -> Result<Option<Reservation>, BudgetExceeded> {
    observer
        .budget()
        .map(|budget| budget.reserve(prompt_chars, max_answer_tokens))
        .transpose()
}
