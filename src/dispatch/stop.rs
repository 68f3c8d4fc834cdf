//! The stop signal of one query: the first reason it cannot succeed (a row failed for
//! good under `blossom.on_error = 'fail'`, the provider refused the key or the account,
//! an outage outlasted `blossom.max_outage`) ends every request of the query at once:
//! none is started after it, those waiting stop waiting, and those in flight are
//! dropped, which closes their connections so the provider stops working (and billing)
//! for them.
//!
//! ```sql
//! SET blossom.on_error = 'fail';
//! SELECT enhance(text) FROM 'data/reviews.csv'; -- the first row that fails ends it all
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// Why a query stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A row failed for good under `blossom.on_error = 'fail'`: its message.
    RowFailed(String),
    /// The provider refused the key or the account (HTTP 401, 402 or 403): no row is to
    /// blame and no other row can succeed.
    Refused(String),
    /// The provider stayed unreachable longer than `blossom.max_outage`.
    Outage(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RowFailed(message) | Self::Refused(message) | Self::Outage(message) => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for StopReason {}

/// The stop signal shared by every request of one query. The first [`Self::stop`] wins;
/// later reasons are ignored.
#[derive(Debug)]
pub struct QueryStop {
    reason: watch::Sender<Option<Arc<StopReason>>>,
}

impl Default for QueryStop {
    fn default() -> Self {
        Self {
            reason: watch::Sender::new(None),
        }
    }
}

impl QueryStop {
    /// Stops the query for `reason`, unless it was stopped already. Returns the reason
    /// in force.
    pub fn stop(&self, reason: StopReason) -> Arc<StopReason> {
        let mut in_force = None;
        self.reason.send_if_modified(|current| match current {
            Some(first) => {
                in_force = Some(Arc::clone(first));
                false
            }
            None => {
                let reason = Arc::new(reason);
                in_force = Some(Arc::clone(&reason));
                *current = Some(reason);
                true
            }
        });
        in_force.unwrap_or_else(|| Arc::new(StopReason::RowFailed(String::new())))
    }

    /// Why the query stopped, if it did.
    pub fn reason(&self) -> Option<Arc<StopReason>> {
        self.reason.borrow().clone()
    }

    /// Resolves when the query is stopped, with the reason.
    pub async fn stopped(&self) -> Arc<StopReason> {
        let mut receiver = self.reason.subscribe();
        loop {
            if let Some(reason) = receiver.borrow_and_update().clone() {
                return reason;
            }
            if receiver.changed().await.is_err() {
                // The sender lives as long as `self`; never reached while borrowed.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `work` unless the query stops first: then `work` is dropped (a request in
    /// flight is abandoned and its connection closed) and the reason returned.
    pub async fn unless_stopped<T>(
        &self,
        work: impl Future<Output = T>,
    ) -> Result<T, Arc<StopReason>> {
        if let Some(reason) = self.reason() {
            return Err(reason);
        }
        tokio::select! {
            biased;
            reason = self.stopped() => Err(reason),
            done = work => Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_first_reason_wins_and_ends_waiting_work() {
        let stop = Arc::new(QueryStop::default());
        assert!(stop.reason().is_none());
        let waiting = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                stop.unless_stopped(tokio::time::sleep(Duration::from_secs(60)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.stop(StopReason::Refused("HTTP 401".into()));
        stop.stop(StopReason::RowFailed("later".into()));
        let result = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("stopped work returns at once")
            .expect("task ran");
        assert_eq!(
            result.unwrap_err().as_ref(),
            &StopReason::Refused("HTTP 401".into())
        );
        assert_eq!(stop.reason().unwrap().to_string(), "HTTP 401");
        // Work started after the stop is never run.
        let ran = stop.unless_stopped(async { 1 }).await;
        assert!(ran.is_err());
    }

    #[tokio::test]
    async fn work_finishes_when_nothing_stops_it() {
        let stop = QueryStop::default();
        assert_eq!(stop.unless_stopped(async { 7 }).await.unwrap(), 7);
    }
}
