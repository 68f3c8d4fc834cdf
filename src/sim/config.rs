//! Configuration of the simulator: latency, concurrency and rate limits, and fault injection.

use std::time::Duration;

/// How a [`Simulator`](super::Simulator) behaves. Change it on a running server with
/// [`Simulator::set_config`](super::Simulator::set_config).
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Fixed latency added to every answered request.
    pub latency: Duration,
    /// Extra latency, uniformly random in `0..=jitter` (seeded by `seed`).
    pub jitter: Duration,
    /// Latency per answer token, added to `latency` for answered requests: a model
    /// generates its answer token by token, so a long (or packed) answer takes longer.
    pub latency_per_token: Duration,
    /// Chat requests beyond this many being served at once get
    /// `429` with `Retry-After: 1` and an `{"error": ...}` body.
    pub max_concurrent: Option<usize>,
    /// The server's own rate limit (GCRA with `rate_burst` tokens). Excess requests get `429`
    /// with a `Retry-After` header (whole seconds, rounded up) and the body
    /// `{"error": {"message": ..., "type": "rate_limit"}, "retryAfterSeconds": N}`.
    /// `Some(0)` rejects every request.
    pub requests_per_minute: Option<u32>,
    /// Burst size of the rate limiter (`0` counts as `1`).
    pub rate_burst: u32,
    /// Injected faults.
    pub faults: FaultConfig,
    /// Seed of the fault dice and of the jitter.
    pub seed: u64,
    /// Model name reported in answers and by `GET /v1/models`.
    pub model: String,
    /// When set, chat and model requests need `Authorization: Bearer <key>`, else `401`.
    pub api_key: Option<String>,
    /// Whether requests with a `json_schema` `response_format` are served; when false
    /// they get `400` naming it, as from a provider without structured outputs.
    pub json_schema: bool,
    /// When true, every answer repeats the request's headers, `Authorization` included,
    /// as a careless server does: in a 200 answer's content, in JSON error bodies, and
    /// in HTML error pages for 5xx faults. For tests that no secret leaks.
    pub echo_headers: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            latency_per_token: Duration::ZERO,
            max_concurrent: None,
            requests_per_minute: None,
            rate_burst: 1,
            faults: FaultConfig::default(),
            seed: 42,
            model: "blossom-sim".to_string(),
            api_key: None,
            json_schema: true,
            echo_headers: false,
        }
    }
}

impl SimConfig {
    /// Checks that all fault rates are numbers in `0..=1`.
    pub fn validate(&self) -> Result<(), String> {
        self.faults.validate()
    }
}

/// Which faults are injected and how often.
///
/// Each chat request that passes authentication and the limits draws one uniform number and
/// gets at most one fault, in this order: `drop_connection`, `server_error`, `rate_limited`,
/// `payment_required`, `hang`, `malformed_json`, `empty_content`. Each rate is the probability
/// of its fault as long as the rates sum to at most 1 (beyond that, later kinds lose out).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Rate of `500` answers with a JSON error body.
    pub server_error: f64,
    /// Rate of `429` answers advertising [`retry_after`](Self::retry_after).
    pub rate_limited: f64,
    /// Rate of requests that wait [`hang_for`](Self::hang_for) before answering.
    pub hang: f64,
    /// Rate of connections closed without any response.
    pub drop_connection: f64,
    /// Rate of `200` answers whose body is truncated, invalid JSON.
    pub malformed_json: f64,
    /// Rate of `200` answers whose `choices[0].message.content` is `""`.
    pub empty_content: f64,
    /// Rate of `402 {"error": {"message": "insufficient credit"}}` answers.
    pub payment_required: f64,
    /// The wait advertised by injected `429`s.
    pub retry_after: Duration,
    /// Send a `Retry-After` header (whole seconds, rounded up) with injected `429`s.
    pub retry_after_in_header: bool,
    /// Send `"retryAfterSeconds": <fractional seconds>` in the body of injected `429`s,
    /// like Pollinations does.
    pub retry_after_in_body: bool,
    /// How long a hanging request waits before it answers.
    pub hang_for: Duration,
    /// When `Some(n)`, at most `n` faults are injected since the configuration was set;
    /// afterwards every request succeeds.
    pub max_faults: Option<u64>,
    /// Rate of packed answers (blossom's multi-row packing) that leave one id out.
    pub pack_drop_id: f64,
    /// Rate of packed answers that give one id twice (the copy with an invalid answer).
    pub pack_duplicate_id: f64,
    /// Rate of packed answers that add an id that was not asked.
    pub pack_unknown_id: f64,
    /// Rate of packed answers where one item's answer is invalid (`UNSURE`).
    pub pack_invalid_answer: f64,
    /// Rate of packed answers in reverse order (harmless: rows are matched by id).
    pub pack_shuffle: f64,
    /// Rate of packed requests answered as if they were one text, ignoring the packing
    /// protocol (a model that never keeps it: set 1).
    pub pack_ignore: f64,
    /// Rate of packed requests whose every item is answered with its own text (a model
    /// echoing the input back).
    pub pack_echo: f64,
    /// Rate of packed requests refused with a `400` (`context_length_exceeded`), as a
    /// provider refuses a prompt it finds too long.
    pub pack_reject: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            server_error: 0.0,
            rate_limited: 0.0,
            hang: 0.0,
            drop_connection: 0.0,
            malformed_json: 0.0,
            empty_content: 0.0,
            payment_required: 0.0,
            retry_after: Duration::from_secs(1),
            retry_after_in_header: true,
            retry_after_in_body: true,
            hang_for: Duration::from_secs(30),
            max_faults: None,
            pack_drop_id: 0.0,
            pack_duplicate_id: 0.0,
            pack_unknown_id: 0.0,
            pack_invalid_answer: 0.0,
            pack_shuffle: 0.0,
            pack_ignore: 0.0,
            pack_echo: 0.0,
            pack_reject: 0.0,
        }
    }
}

impl FaultConfig {
    /// Checks that all rates are numbers in `0..=1`.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("server_error", self.server_error),
            ("rate_limited", self.rate_limited),
            ("hang", self.hang),
            ("drop_connection", self.drop_connection),
            ("malformed_json", self.malformed_json),
            ("empty_content", self.empty_content),
            ("payment_required", self.payment_required),
            ("pack_drop_id", self.pack_drop_id),
            ("pack_duplicate_id", self.pack_duplicate_id),
            ("pack_unknown_id", self.pack_unknown_id),
            ("pack_invalid_answer", self.pack_invalid_answer),
            ("pack_shuffle", self.pack_shuffle),
            ("pack_ignore", self.pack_ignore),
            ("pack_echo", self.pack_echo),
            ("pack_reject", self.pack_reject),
        ];
        for (name, rate) in rates {
            validate_rate(name, rate)?;
        }
        Ok(())
    }

    /// Sets every `pack_*` misbehaviour (shuffling included) to `rate`.
    pub fn with_pack_misbehaviour(self, rate: f64) -> Self {
        Self {
            pack_drop_id: rate,
            pack_duplicate_id: rate,
            pack_unknown_id: rate,
            pack_invalid_answer: rate,
            pack_shuffle: rate,
            ..self
        }
    }

    /// True when no request-level fault can be injected (packed-answer misbehaviour
    /// aside).
    pub fn is_empty(&self) -> bool {
        [
            self.server_error,
            self.rate_limited,
            self.hang,
            self.drop_connection,
            self.malformed_json,
            self.empty_content,
            self.payment_required,
        ]
        .iter()
        .all(|r| *r <= 0.0)
    }
}

/// Checks that a fault rate is a number in `0..=1`; the error names the rate.
pub fn validate_rate(name: &str, rate: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(format!(
            "fault rate `{name}` must be a number between 0 and 1, got {rate}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = SimConfig::default();
        assert_eq!(c.seed, 42);
        assert_eq!(c.rate_burst, 1);
        assert_eq!(c.model, "blossom-sim");
        assert!(c.faults.is_empty());
        assert_eq!(c.faults.retry_after, Duration::from_secs(1));
        assert_eq!(c.faults.hang_for, Duration::from_secs(30));
        assert!(c.faults.retry_after_in_header && c.faults.retry_after_in_body);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn rejects_bad_rates() {
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let c = SimConfig {
                faults: FaultConfig {
                    hang: bad,
                    ..FaultConfig::default()
                },
                ..SimConfig::default()
            };
            let err = c.validate().expect_err("invalid rate");
            assert!(err.contains("hang"), "{err}");
        }
        assert!(validate_rate("x", 1.0).is_ok());
        assert!(validate_rate("x", 0.0).is_ok());
    }
}
