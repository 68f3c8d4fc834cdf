//! Request statistics of the simulator: lock-free counters updated by the handlers and
//! the [`SimStats`] snapshot handed to tests and served at `GET /sim/stats`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::faults::FaultKind;

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Chat requests received, including rejected and faulted ones.
    pub requests: u64,
    /// `200` answers with valid, non-empty content.
    pub answered: u64,
    /// Chat requests being handled right now.
    pub in_flight: u64,
    /// Most chat requests handled at once (from entering the handler until the response is
    /// returned, latency included).
    pub peak_in_flight: u64,
    /// `429`s from the `requests_per_minute` limiter.
    pub rate_limited: u64,
    /// `429`s from `max_concurrent`.
    pub busy_rejected: u64,
    /// `401`s.
    pub unauthorized: u64,
    /// Injected faults of any kind.
    pub faults: u64,
    /// Injected faults by kind (only kinds that occurred): `"server_error"`,
    /// `"rate_limited"`, `"hang"`, `"drop_connection"`, `"malformed_json"`,
    /// `"empty_content"`, `"payment_required"`.
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Estimated prompt tokens of answered requests.
    pub prompt_tokens: u64,
    /// Estimated completion tokens of answered requests.
    pub completion_tokens: u64,
    /// Well-formed chat requests by the model they asked for (`""` when none).
    #[serde(default)]
    pub requests_by_model: BTreeMap<String, u64>,
    /// Well-formed chat requests by the key they presented, as its last four
    /// characters after `…` (`""` without a key): which process of a cluster sent them.
    #[serde(default)]
    pub requests_by_key: BTreeMap<String, u64>,
    /// Well-formed chat requests that asked for a JSON answer with a `response_format`
    /// of type `json_schema` or `json_object`.
    #[serde(default)]
    pub json_requests: u64,
    /// Questions in answered chat requests: one per single request, one per item of a
    /// packed request, one per pair of a semantic join's block (what a `LIMIT` that
    /// stops asking saves).
    #[serde(default)]
    pub questions: u64,
}

/// The live counters behind [`SimStats`].
#[derive(Debug, Default)]
pub struct StatsCounters {
    requests: AtomicU64,
    answered: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    rate_limited: AtomicU64,
    busy_rejected: AtomicU64,
    unauthorized: AtomicU64,
    faults: AtomicU64,
    faults_by_kind: [AtomicU64; FaultKind::ALL.len()],
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    requests_by_model: Mutex<BTreeMap<String, u64>>,
    requests_by_key: Mutex<BTreeMap<String, u64>>,
    json_requests: AtomicU64,
    questions: AtomicU64,
}

/// Counts a chat request as in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    stats: &'a StatsCounters,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // Never below zero, even if a reset raced with this request.
        let _ = self
            .stats
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl StatsCounters {
    /// Counts a received chat request and marks it in flight until the guard is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        bump(&self.requests, 1);
        let now = self
            .in_flight
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        self.peak_in_flight.fetch_max(now, Ordering::AcqRel);
        InFlight { stats: self }
    }

    /// Counts the questions of an answered request.
    pub fn questions(&self, questions: u64) {
        bump(&self.questions, questions);
    }

    /// Counts a valid answer and its tokens.
    pub fn answered(&self, prompt_tokens: u64, completion_tokens: u64) {
        bump(&self.answered, 1);
        bump(&self.prompt_tokens, prompt_tokens);
        bump(&self.completion_tokens, completion_tokens);
    }

    /// Counts a well-formed chat request for `model`.
    pub fn model_requested(&self, model: &str) {
        let mut by_model = self
            .requests_by_model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *by_model.entry(model.to_string()).or_insert(0) += 1;
    }

    /// Counts a well-formed chat request that presented the key labelled `label`.
    pub fn key_presented(&self, label: &str) {
        let mut by_key = self
            .requests_by_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *by_key.entry(label.to_string()).or_insert(0) += 1;
    }

    /// Counts a well-formed chat request asking for a JSON answer.
    pub fn json_requested(&self) {
        bump(&self.json_requests, 1);
    }

    /// Counts a `429` from the own rate limiter.
    pub fn rate_limited(&self) {
        bump(&self.rate_limited, 1);
    }

    /// Counts a `429` from `max_concurrent`.
    pub fn busy_rejected(&self) {
        bump(&self.busy_rejected, 1);
    }

    /// Counts a `401`.
    pub fn unauthorized(&self) {
        bump(&self.unauthorized, 1);
    }

    /// Counts an injected fault.
    pub fn fault(&self, kind: FaultKind) {
        bump(&self.faults, 1);
        if let Some(counter) = self.faults_by_kind.get(kind.index()) {
            bump(counter, 1);
        }
    }

    /// Zeroes all counters; `in_flight` is a gauge and stays, `peak_in_flight` restarts from it.
    pub fn reset(&self) {
        for counter in [
            &self.requests,
            &self.answered,
            &self.rate_limited,
            &self.busy_rejected,
            &self.unauthorized,
            &self.faults,
            &self.prompt_tokens,
            &self.completion_tokens,
            &self.json_requests,
            &self.questions,
        ]
        .into_iter()
        .chain(&self.faults_by_kind)
        {
            counter.store(0, Ordering::Relaxed);
        }
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::Acquire), Ordering::Release);
        self.requests_by_model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.requests_by_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        SimStats {
            requests: get(&self.requests),
            answered: get(&self.answered),
            in_flight: get(&self.in_flight),
            peak_in_flight: get(&self.peak_in_flight),
            rate_limited: get(&self.rate_limited),
            busy_rejected: get(&self.busy_rejected),
            unauthorized: get(&self.unauthorized),
            faults: get(&self.faults),
            faults_by_kind: FaultKind::ALL
                .iter()
                .zip(&self.faults_by_kind)
                .map(|(kind, c)| (kind.as_str().to_string(), get(c)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            prompt_tokens: get(&self.prompt_tokens),
            completion_tokens: get(&self.completion_tokens),
            requests_by_model: self
                .requests_by_model
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            requests_by_key: self
                .requests_by_key
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            json_requests: get(&self.json_requests),
            questions: get(&self.questions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = StatsCounters::default();
        {
            let _a = s.enter();
            let _b = s.enter();
            assert_eq!(s.snapshot().in_flight, 2);
            s.fault(FaultKind::Hang);
            s.answered(3, 4);
            s.model_requested("m");
            s.model_requested("m");
            s.json_requested();
        }
        let snap = s.snapshot();
        assert_eq!(snap.requests, 2);
        assert_eq!(snap.in_flight, 0);
        assert_eq!(snap.peak_in_flight, 2);
        assert_eq!(snap.faults, 1);
        assert_eq!(snap.faults_by_kind.get("hang"), Some(&1));
        assert_eq!(snap.faults_by_kind.len(), 1);
        assert_eq!((snap.prompt_tokens, snap.completion_tokens), (3, 4));
        assert_eq!(snap.requests_by_model.get("m"), Some(&2));
        assert_eq!(snap.json_requests, 1);
        s.reset();
        assert_eq!(s.snapshot(), SimStats::default());
    }
}
