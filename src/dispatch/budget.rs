//! The spending limits of one query (`blossom.max_requests`, `blossom.max_tokens`,
//! `blossom.max_cost`): every attempt reserves its share before it is sent, so a query
//! stops before it would go over, not after.

use std::fmt;
use std::sync::Mutex;

use crate::config::{Budget, NANO_USD_PER_USD, Price};
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
    /// Nano-USD spent by requests whose model has a price.
    cost_nanos: u64,
    /// Nano-USD estimated for requests in flight.
    reserved_cost_nanos: u64,
    /// The longest answer, in tokens, a provider reported so far; `None` before the
    /// first.
    longest_answer: Option<u64>,
}

/// The estimate held for one attempt in flight; give it back with
/// [`QueryBudget::settle`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a reservation must be settled when the attempt ends"]
pub struct Reservation {
    estimate: TokenUsage,
    price: Option<Price>,
}

impl Reservation {
    fn tokens(&self) -> u64 {
        self.estimate.prompt_tokens + self.estimate.completion_tokens
    }

    /// The attempt's tokens as estimated before it was sent: its prompt's characters /
    /// 4, and the longest answer asked for (0 when none was).
    pub fn estimate(&self) -> TokenUsage {
        self.estimate
    }

    fn cost_nanos(&self, usage: TokenUsage) -> u64 {
        self.price.map_or(0, |price| {
            price.cost_nanos(usage.prompt_tokens, usage.completion_tokens)
        })
    }
}

/// The tokens of a request known before it is sent: its prompt's characters / 4, and
/// the longest answer it asks for (0 when it asks for no limit).
pub(crate) fn estimate_tokens(prompt_chars: usize, max_answer_tokens: Option<u32>) -> TokenUsage {
    TokenUsage {
        prompt_tokens: (prompt_chars as u64).div_ceil(CHARS_PER_TOKEN),
        completion_tokens: u64::from(max_answer_tokens.unwrap_or(0)),
    }
}

impl QueryBudget {
    /// A fresh budget for one query.
    pub fn new(limits: Budget) -> Self {
        Self {
            limits,
            spent: Mutex::default(),
        }
    }

    /// Reserves one request to `model` and its estimated tokens at the model's
    /// `price`, or says which budget that would exceed. The estimate is the prompt's
    /// characters / 4 plus the longest answer asked for (`max_answer_tokens`). A
    /// request that sets no limit on its answer is held to the longest answer of the
    /// query so far, or, before the first, to as many answer tokens as its prompt has:
    /// answers longer than every one before can still overrun a budget by their
    /// excess, which `max_answer_tokens` rules out. Under
    /// `blossom.max_cost` a model without a price is refused: its spending could not be
    /// held to the budget.
    pub fn reserve(
        &self,
        prompt_chars: usize,
        max_answer_tokens: Option<u32>,
        model: &str,
        price: Option<Price>,
    ) -> Result<Reservation, BudgetExceeded> {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let mut estimate = estimate_tokens(prompt_chars, max_answer_tokens);
        if max_answer_tokens.is_none() {
            estimate.completion_tokens = spent.longest_answer.unwrap_or(estimate.prompt_tokens);
        }
        let reservation = Reservation { estimate, price };
        let tokens = reservation.tokens();
        let cost = reservation.cost_nanos(reservation.estimate);
        if let Some(limit) = self.limits.max_requests
            && spent.requests >= limit
        {
            return Err(BudgetExceeded::over(
                "max_requests",
                limit as f64,
                spent.requests as f64,
                "requests sent",
            ));
        }
        if let Some(limit) = self.limits.max_tokens {
            let committed = spent.tokens + spent.reserved_tokens;
            if committed + tokens > limit {
                return Err(BudgetExceeded::over(
                    "max_tokens",
                    limit as f64,
                    spent.tokens as f64,
                    "tokens spent",
                ));
            }
        }
        if let Some(limit) = self.limits.max_cost {
            if price.is_none() {
                return Err(BudgetExceeded {
                    unpriced_model: Some(model.to_string()),
                    ..BudgetExceeded::over("max_cost", limit, usd(spent.cost_nanos), "USD spent")
                });
            }
            let committed = spent.cost_nanos + spent.reserved_cost_nanos;
            if committed.saturating_add(cost) as f64 > limit * NANO_USD_PER_USD {
                return Err(BudgetExceeded::over(
                    "max_cost",
                    limit,
                    usd(spent.cost_nanos),
                    "USD spent",
                ));
            }
        }
        spent.requests += 1;
        spent.reserved_tokens += tokens;
        spent.reserved_cost_nanos += cost;
        Ok(reservation)
    }

    /// Replaces an attempt's estimate with what the provider reported it used; a
    /// provider that reports no `usage` is charged the estimate, so the token and money
    /// budgets still hold.
    pub fn settle(&self, reservation: Reservation, usage: Option<TokenUsage>) {
        let used = usage.unwrap_or(reservation.estimate);
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(usage) = usage {
            spent.longest_answer = spent.longest_answer.max(Some(usage.completion_tokens));
        }
        spent.reserved_tokens = spent.reserved_tokens.saturating_sub(reservation.tokens());
        spent.tokens += used.prompt_tokens + used.completion_tokens;
        spent.reserved_cost_nanos = spent
            .reserved_cost_nanos
            .saturating_sub(reservation.cost_nanos(reservation.estimate));
        spent.cost_nanos = spent
            .cost_nanos
            .saturating_add(reservation.cost_nanos(used));
    }

    /// Requests sent and tokens spent so far.
    pub fn spent(&self) -> (u64, u64) {
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        (spent.requests, spent.tokens)
    }

    /// USD spent so far by requests whose model has a price.
    pub fn spent_usd(&self) -> f64 {
        usd(self
            .spent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cost_nanos)
    }
}

fn usd(nanos: u64) -> f64 {
    nanos as f64 / NANO_USD_PER_USD
}

/// A query stopped because its next request would go over a budget.
///
/// ```sql
/// SET blossom.max_tokens = 50000;
/// SELECT summarize(text) FROM 'data/articles.json';
/// -- Error: the query stopped: its next request would exceed blossom.max_tokens = 50000 ...
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetExceeded {
    /// The setting without its `blossom.` prefix.
    pub setting: &'static str,
    /// Its value (USD for `max_cost`).
    pub limit: f64,
    /// What the query had spent when it stopped (USD for `max_cost`).
    pub spent: f64,
    unit: &'static str,
    /// Under `max_cost`: the model whose price is unknown, when that is why.
    pub unpriced_model: Option<String>,
}

impl BudgetExceeded {
    fn over(setting: &'static str, limit: f64, spent: f64, unit: &'static str) -> Self {
        Self {
            setting,
            limit,
            spent,
            unit,
            unpriced_model: None,
        }
    }
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(model) = &self.unpriced_model {
            return write!(
                f,
                "the query stopped: blossom.{} = {} is set, but the price of the model \
                 '{model}' is unknown, so its requests cannot be held to it. Set its price \
                 with SET blossom.price_input = <USD per million prompt tokens> and SET \
                 blossom.price_output = <USD per million answer tokens> (embeddings: use a \
                 listed embedding model), or remove the budget with SET blossom.{} = ''",
                self.setting, self.limit, self.setting
            );
        }
        // Spending in USD to the micro-dollar; requests and tokens are whole numbers.
        let spent = if self.setting == "max_cost" {
            format!("{:.6}", self.spent)
        } else {
            self.spent.to_string()
        };
        write!(
            f,
            "the query stopped: its next request would exceed blossom.{} = {} ({} {} so far). \
             Answers already received are kept in the response cache, so a rerun does not pay \
             for them again; raise the budget with SET blossom.{} = <n>, or remove it with \
             SET blossom.{} = ''",
            self.setting, self.limit, spent, self.unit, self.setting, self.setting
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
            let r = budget.reserve(1_000, Some(1_000), "m", None).unwrap();
            budget.settle(r, usage(300, 300));
        }
        assert_eq!(budget.spent(), (10_000, 6_000_000));
    }

    #[test]
    fn request_budget_allows_exactly_the_limit() {
        let budget = QueryBudget::new(Budget {
            max_requests: Some(3),
            ..Budget::default()
        });
        let held: Vec<_> = (0..3)
            .map(|_| budget.reserve(10, None, "m", None).unwrap())
            .collect();
        let err = budget.reserve(10, None, "m", None).unwrap_err();
        assert_eq!(
            (err.setting, err.limit, err.spent),
            ("max_requests", 3.0, 3.0)
        );
        assert!(
            err.to_string().contains("blossom.max_requests = 3"),
            "{err}"
        );
        for r in held {
            budget.settle(r, None);
        }
        assert_eq!(
            budget.spent(),
            (3, 18),
            "no usage: the estimate (3 prompt and 3 answer tokens each) is charged"
        );
        assert!(
            budget.reserve(10, None, "m", None).is_err(),
            "settling does not refund requests"
        );
    }

    #[test]
    fn token_budget_counts_reservations_in_flight_and_actual_usage() {
        let budget = QueryBudget::new(Budget {
            max_tokens: Some(100),
            ..Budget::default()
        });
        // 120 characters and 10 answer tokens = 40 tokens estimated each: two fit, a
        // third would not.
        let a = budget.reserve(120, Some(10), "m", None).unwrap();
        let b = budget.reserve(120, Some(10), "m", None).unwrap();
        assert_eq!(
            budget
                .reserve(120, Some(10), "m", None)
                .unwrap_err()
                .setting,
            "max_tokens"
        );
        // The provider reports less than estimated: room opens up again.
        budget.settle(a, usage(10, 5));
        budget.settle(b, usage(10, 5));
        assert_eq!(budget.spent(), (2, 30));
        let c = budget.reserve(160, Some(20), "m", None).unwrap();
        budget.settle(c, usage(60, 10));
        let err = budget.reserve(160, None, "m", None).unwrap_err();
        assert_eq!(err.spent, 100.0);
    }

    #[test]
    fn an_answer_without_a_limit_is_held_to_the_longest_so_far_or_first_to_the_prompt() {
        let budget = QueryBudget::new(Budget {
            max_tokens: Some(900),
            ..Budget::default()
        });
        // 40 characters: 10 prompt tokens, and 10 answer tokens assumed.
        let a = budget.reserve(40, None, "m", None).unwrap();
        assert_eq!(a.estimate().completion_tokens, 10);
        budget.settle(a, usage(10, 300));
        // A long answer came back: the next requests are held to it.
        let b = budget.reserve(40, None, "m", None).unwrap();
        assert_eq!(b.estimate().completion_tokens, 300);
        budget.settle(b, usage(10, 5));
        let c = budget.reserve(40, None, "m", None).unwrap();
        assert_eq!(c.estimate().completion_tokens, 300, "the longest so far");
        // Short answers only: the next ones are held to them, not to the prompt.
        let short = QueryBudget::new(Budget::default());
        let r = short.reserve(400, None, "m", None).unwrap();
        assert_eq!(r.estimate().completion_tokens, 100);
        short.settle(r, usage(100, 2));
        let r = short.reserve(400, None, "m", None).unwrap();
        assert_eq!(r.estimate().completion_tokens, 2);
        // 325 spent, 310 in flight: another 310 would go over 900.
        assert!(budget.reserve(40, None, "m", None).is_err());
        // A limit asked for is the limit.
        assert_eq!(
            budget.reserve(40, Some(7), "m", None).unwrap().estimate(),
            TokenUsage {
                prompt_tokens: 10,
                completion_tokens: 7
            }
        );
    }

    #[test]
    fn cost_budget_counts_reservations_in_flight_and_actual_usage() {
        let budget = QueryBudget::new(Budget {
            max_cost: Some(0.001),
            ..Budget::default()
        });
        // 10 USD per million either way: 400 characters (100 tokens) plus 100 answer
        // tokens estimated = 200 tokens = 0.002 USD, over the budget at once.
        let price = Some(Price {
            input: 10.0,
            output: 10.0,
        });
        let err = budget.reserve(400, Some(100), "m", price).unwrap_err();
        assert_eq!(
            (err.setting, err.limit, err.spent),
            ("max_cost", 0.001, 0.0)
        );
        assert!(
            err.to_string()
                .contains("exceed blossom.max_cost = 0.001 (0.000000 USD spent so far)"),
            "{err}"
        );
        // 40 tokens = 0.0004 USD each: two fit in flight, a third would not.
        let a = budget.reserve(80, Some(20), "m", price).unwrap();
        let b = budget.reserve(80, Some(20), "m", price).unwrap();
        assert_eq!(
            budget
                .reserve(80, Some(20), "m", price)
                .unwrap_err()
                .setting,
            "max_cost"
        );
        // The provider reports 10 tokens each (0.0001 USD): room opens up again.
        budget.settle(a, usage(5, 5));
        budget.settle(b, usage(5, 5));
        assert!((budget.spent_usd() - 0.0002).abs() < 1e-12);
        let c = budget.reserve(80, Some(20), "m", price).unwrap();
        // No usage reported: the estimate is charged.
        budget.settle(c, None);
        assert!((budget.spent_usd() - 0.0006).abs() < 1e-12);
        // 0.0006 spent and 0.0006 more estimated would go over 0.001.
        let err = budget.reserve(160, Some(20), "m", price).unwrap_err();
        assert!((err.spent - 0.0006).abs() < 1e-12);
        let d = budget.reserve(80, Some(20), "m", price).unwrap();
        budget.settle(d, usage(20, 20));
        assert!(
            budget.reserve(1, None, "m", price).is_err(),
            "the budget is spent exactly"
        );
    }

    #[test]
    fn cost_budget_refuses_a_model_without_a_price_and_frees_free_ones() {
        let budget = QueryBudget::new(Budget {
            max_cost: Some(0.5),
            ..Budget::default()
        });
        let err = budget.reserve(10, None, "my-tune", None).unwrap_err();
        assert_eq!(err.unpriced_model.as_deref(), Some("my-tune"));
        let message = err.to_string();
        assert!(message.contains("blossom.max_cost = 0.5"), "{message}");
        assert!(message.contains("'my-tune'"), "{message}");
        assert!(message.contains("blossom.price_input"), "{message}");
        for _ in 0..1_000 {
            let r = budget
                .reserve(100_000, Some(1_000), "llama3.2", Some(Price::FREE))
                .unwrap();
            budget.settle(r, usage(25_000, 1_000));
        }
        assert_eq!(budget.spent_usd(), 0.0);
        // Without a money budget an unknown price stops nothing.
        let free = QueryBudget::new(Budget::default());
        let r = free.reserve(10, None, "my-tune", None).unwrap();
        free.settle(r, usage(1, 1));
        assert_eq!(free.spent(), (1, 2));
    }
}
