//! Fault injection: the kinds of faults and the seeded dice that decide, per request,
//! whether (and which) fault to inject, respecting the `max_faults` budget.

use super::config::FaultConfig;

/// A kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The connection is closed without a response.
    DropConnection,
    /// `500` with a JSON error body.
    ServerError,
    /// `429` with `Retry-After`.
    RateLimited,
    /// `402` insufficient credit.
    PaymentRequired,
    /// The answer comes only after `hang_for`.
    Hang,
    /// `200` whose body is invalid JSON.
    MalformedJson,
    /// `200` whose content is empty.
    EmptyContent,
}

impl FaultKind {
    /// All kinds, in the order the dice consider them.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::DropConnection,
        FaultKind::ServerError,
        FaultKind::RateLimited,
        FaultKind::PaymentRequired,
        FaultKind::Hang,
        FaultKind::MalformedJson,
        FaultKind::EmptyContent,
    ];

    /// The name used in [`SimStats::faults_by_kind`](super::SimStats::faults_by_kind).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::DropConnection => "drop_connection",
            FaultKind::ServerError => "server_error",
            FaultKind::RateLimited => "rate_limited",
            FaultKind::PaymentRequired => "payment_required",
            FaultKind::Hang => "hang",
            FaultKind::MalformedJson => "malformed_json",
            FaultKind::EmptyContent => "empty_content",
        }
    }

    /// Position in [`FaultKind::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The configured rate of this kind.
    fn rate(self, config: &FaultConfig) -> f64 {
        match self {
            FaultKind::DropConnection => config.drop_connection,
            FaultKind::ServerError => config.server_error,
            FaultKind::RateLimited => config.rate_limited,
            FaultKind::PaymentRequired => config.payment_required,
            FaultKind::Hang => config.hang,
            FaultKind::MalformedJson => config.malformed_json,
            FaultKind::EmptyContent => config.empty_content,
        }
    }
}

/// Seeded dice deciding the fault of each request.
#[derive(Debug, Clone)]
pub struct FaultDice {
    rng: fastrand::Rng,
    injected: u64,
}

impl FaultDice {
    /// Dice with a fresh budget, seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            injected: 0,
        }
    }

    /// Rolls once: at most one fault, `None` once `max_faults` faults have been injected.
    pub fn roll(&mut self, config: &FaultConfig) -> Option<FaultKind> {
        if config.is_empty() || config.max_faults.is_some_and(|max| self.injected >= max) {
            return None;
        }
        let roll = self.rng.f64();
        let mut threshold = 0.0;
        let kind = FaultKind::ALL.into_iter().find(|kind| {
            let rate = kind.rate(config);
            threshold += rate;
            rate > 0.0 && roll < threshold
        })?;
        self.injected += 1;
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certain_fault_respects_budget() {
        let config = FaultConfig {
            server_error: 1.0,
            max_faults: Some(2),
            ..FaultConfig::default()
        };
        let mut dice = FaultDice::new(1);
        assert_eq!(dice.roll(&config), Some(FaultKind::ServerError));
        assert_eq!(dice.roll(&config), Some(FaultKind::ServerError));
        assert_eq!(dice.roll(&config), None);
    }

    #[test]
    fn no_faults_by_default() {
        let mut dice = FaultDice::new(1);
        assert!((0..1000).all(|_| dice.roll(&FaultConfig::default()).is_none()));
    }

    #[test]
    fn rates_are_roughly_respected_and_seeded() {
        let config = FaultConfig {
            server_error: 0.2,
            empty_content: 0.3,
            ..FaultConfig::default()
        };
        let rolls = |seed| {
            let mut dice = FaultDice::new(seed);
            (0..10_000).map(|_| dice.roll(&config)).collect::<Vec<_>>()
        };
        let a = rolls(7);
        assert_eq!(a, rolls(7));
        let count = |k| a.iter().filter(|f| **f == Some(k)).count();
        let server = count(FaultKind::ServerError);
        let empty = count(FaultKind::EmptyContent);
        assert!((1700..2300).contains(&server), "{server}");
        assert!((2600..3400).contains(&empty), "{empty}");
        assert_eq!(a.iter().flatten().count(), server + empty);
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<_> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FaultKind::ALL.len());
        for (i, k) in FaultKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
