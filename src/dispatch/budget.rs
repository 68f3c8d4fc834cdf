//! The spending limits of one query (`blossom.max_requests`, `blossom.max_tokens`):
//! every attempt reserves its share before it is sent, so a query stops before it would
//! go over, not after.

use std::fmt;
use std::sync::Mutex;

use crate::config::Budget;
use crate::provider::TokenUsage;

/// Characters per token assumed when estimating a prompt before it is sent.
pub(crate) const CHARS_PER_TOKEN: u64 = 4;

/// What one query has spent and reserved against its [`Budget`].
///
/// ```sql
/// SET blossom.max_requests = 100; -- each query gets a fresh QueryBudget of 100 requests
/// ```
#[derive(Debug, Default)]
pub struct QueryBudget {
    limits: Budget,
    spent: Mutex<Spent>,
}

#[derive(Debug, Default)]
struct Spent {
    requests: u64,
    tokens: u64,
    /// Tokens estimated for requests in flight.
    reserved_tokens: u64,
}

/// The token estimate held for one attempt in flight; give it back with
/// [`QueryBudget::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reservation must be settled when the attempt ends"]
pub struct Reservation {
    tokens: u64,
}

impl QueryBudget {
    /// A fresh budget for one query.
    pub fn new(limits: Budget) -> Self {
        Self {
            limits,
            spent: Mutex::default(),
        }
    }

    /// Reserves one request and its estimated tokens (the prompt's characters / 4, plus
    /// the longest answer asked for), or says which budget that would exceed.
    pub fn reserve(
        &self,
        prompt_chars: usize,
        max_answer_tokens: Option<u32>,
    ) -> Result<Reservation, BudgetExceeded> {
        let estimate = (prompt_chars as u64).div_ceil(CHARS_PER_TOKEN)
            + u64::from(max_answer_tokens.unwrap_or(0));
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(limit) = self.limits.max_requests
            && spent.requests >= limit
        {
            return Err(BudgetExceeded {
                setting: "max_requests",
                limit,
                spent: spent.requests,
                unit: "requests sent",
            });
        }
        if let Some(limit) = self.limits.max_tokens {
            let committed = spent.tokens + spent.reserved_tokens;
            if committed + estimate > limit {
                return Err(BudgetExceeded {
                    setting: "max_tokens",
                    limit,
                    spent: spent.tokens,
                    unit: "tokens spent",
                });
            }
        }
        spent.requests += 1;
        spent.reserved_tokens += estimate;
        Ok(Reservation { tokens: estimate })
    }

    /// Replaces an attempt's estimate with what the provider reported it used; a
    /// provider that reports no `usage` is charged the estimate, so the token budget
    /// still holds.
    pub fn settle(&self, reservation: Reservation, usage: Option<TokenUsage>) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        spent.reserved_tokens = spent.reserved_tokens.saturating_sub(reservation.tokens);
        spent.tokens += match usage {
            Some(usage) => usage.prompt_tokens + usage.completion_tokens,
            None => reservation.tokens,
        };
    }

    /// Requests sent and tokens spent so far.
    pub fn spent(&self) -> (u64, u64) {
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        (spent.requests, spent.tokens)
    }
}

/// A query stopped because its next request would go over a budget.
///
/// ```sql
/// SET blossom.max_tokens = 50000;
/// SELECT summarize(text) FROM 'data/articles.json';
/// -- Error: the query stopped: its next request would exceed blossom.max_tokens = 50000 ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// The setting without its `blossom.` prefix.
    pub setting: &'static str,
    /// Its value.
    pub limit: u64,
    /// What the query had spent when it stopped.
    pub spent: u64,
    unit: &'static str,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the query stopped: its next request would exceed blossom.{} = {} ({} {} so far). \
             Answers already received are kept in the response cache, so a rerun does not pay \
             for them again; raise the budget with SET blossom.{} = <n>, or remove it with \
             SET blossom.{} = ''",
            self.setting, self.limit, self.spent, self.unit, self.setting, self.setting
        )
    }
}

impl std::error::Error for BudgetExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> Option<TokenUsage> {
        Some(TokenUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
        })
    }

    #[test]
    fn no_budget_never_stops() {
        let budget = QueryBudget::new(Budget::default());
        for _ in 0..10_000 {
            let r = budget.reserve(1_000, Some(1_000)).unwrap();
            budget.settle(r, usage(300, 300));
        }
        assert_eq!(budget.spent(), (10_000, 6_000_000));
    }

    #[test]
    fn request_budget_allows_exactly_the_limit() {
        let budget = QueryBudget::new(Budget {
            max_requests: Some(3),
            max_tokens: None,
        });
        let held: Vec<_> = (0..3).map(|_| budget.reserve(10, None).unwrap()).collect();
        let err = budget.reserve(10, None).unwrap_err();
        assert_eq!((err.setting, err.limit, err.spent), ("max_requests", 3, 3));
        assert!(
            err.to_string().contains("blossom.max_requests = 3"),
            "{err}"
        );
        for r in held {
            budget.settle(r, None);
        }
        assert_eq!(
            budget.spent(),
            (3, 9),
            "no usage: the estimate (3 tokens each) is charged"
        );
        assert!(
            budget.reserve(10, None).is_err(),
            "settling does not refund requests"
        );
    }

    #[test]
    fn token_budget_counts_reservations_in_flight_and_actual_usage() {
        let budget = QueryBudget::new(Budget {
            max_requests: None,
            max_tokens: Some(100),
        });
        // 160 characters = 40 tokens estimated each: two fit, a third would not.
        let a = budget.reserve(160, None).unwrap();
        let b = budget.reserve(160, None).unwrap();
        assert_eq!(budget.reserve(160, None).unwrap_err().setting, "max_tokens");
        // The provider reports less than estimated: room opens up again.
        budget.settle(a, usage(10, 5));
        budget.settle(b, usage(10, 5));
        assert_eq!(budget.spent(), (2, 30));
        let c = budget.reserve(160, Some(20)).unwrap();
        budget.settle(c, usage(60, 10));
        let err = budget.reserve(160, None).unwrap_err();
        assert_eq!(err.spent, 100);
    }
}
