//! The ways a provider call fails, and what each means to its caller: whether to retry,
//! stop the query, count an outage, split the request or ask for plain JSON. Callers
//! ask these questions of [`ProviderError`] instead of reading HTTP statuses.

use std::fmt;
use std::time::Duration;

use crate::error_class::ErrorClass;

/// One failed attempt at a chat or embeddings request. Messages name the endpoint but
/// never a secret.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderError {
    /// The provider answered with a non-success HTTP status (a protocol without HTTP
    /// gives the status that means the same).
    Status {
        /// The HTTP status code.
        status: u16,
        /// The provider's message, from its JSON error body or the start of the body.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// No answer within the request timeout.
    Timeout {
        /// The endpoint called.
        url: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The connection could not be made (refused, DNS, TLS).
    Connect {
        /// The endpoint called.
        url: String,
        /// What the network layer said.
        detail: String,
    },
    /// The connection broke before a whole answer arrived.
    Transport {
        /// The endpoint called.
        url: String,
        /// What the network layer said.
        detail: String,
    },
    /// A 200 answer that is not a chat completion we can read.
    Malformed {
        /// What was wrong with it.
        detail: String,
    },
    /// A 200 answer whose content is empty.
    EmptyAnswer,
}

impl ProviderError {
    /// Whether another attempt may succeed: 429, 408, 5xx (including Cloudflare's
    /// 52x), timeouts, connection errors, malformed and empty answers. Never 400, 401,
    /// 402 or 403.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 408 | 409 | 425 | 429 | 500..=599),
            _ => true,
        }
    }

    /// Whether the provider refuses the key or the account (401, 402, 403): every other
    /// request would be refused alike, so the query stops.
    pub fn refuses_account(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 401..=403,
                ..
            }
        )
    }

    /// Whether the provider cannot be reached at all, rather than answering badly: the
    /// connection was refused or broke, no answer came in time, or a gateway in front of
    /// it answered for it (502, 503, 504). What the circuit breaker counts.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Status { status, .. } => matches!(status, 502..=504),
            Self::Malformed { .. } | Self::EmptyAnswer => false,
        }
    }

    /// Whether the provider refused this request for what it holds (400, 413, 422: too
    /// long, filtered, not processable), so that a smaller request, such as one of its
    /// halves, may be accepted. Not a refusal of the account ([`Self::refuses_account`]).
    pub fn rejects_request(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 400 | 413 | 422,
                ..
            }
        )
    }

    /// Whether the provider refused the JSON schema the request asked its answer to
    /// follow: a 400 or 422 whose message names `response_format` or `json_schema`. The
    /// same request in JSON object mode may be accepted.
    pub fn refuses_json_schema(&self) -> bool {
        match self {
            Self::Status {
                status: 400 | 422,
                message,
                ..
            } => {
                let message = message.to_lowercase();
                message.contains("response_format") || message.contains("json_schema")
            }
            _ => false,
        }
    }

    /// The HTTP status the provider answered with, for the record
    /// (`blossom_errors().status`); `None` when no answer came or it was a success that
    /// could not be used. Decisions use the predicates above, not this number.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The class of failure, for logs, `blossom_errors()` and `blossom_metrics()`.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Status { status: 429, .. } => ErrorClass::RateLimited,
            Self::Status { status, .. } if *status >= 500 => ErrorClass::ServerError,
            Self::Status { .. } => ErrorClass::ClientError,
            Self::Timeout { .. } => ErrorClass::Timeout,
            Self::Connect { .. } => ErrorClass::Connect,
            Self::Transport { .. } => ErrorClass::Transport,
            Self::Malformed { .. } => ErrorClass::Malformed,
            Self::EmptyAnswer => ErrorClass::EmptyAnswer,
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status {
                status, message, ..
            } => {
                let hint = match status {
                    401 => " (check the API key: blossom.api_key or BLOSSOM_API_KEY)",
                    402 => {
                        " (the account is out of credit: add credit, or set another key in blossom.api_key or BLOSSOM_API_KEY)"
                    }
                    403 => {
                        " (the key may not use this model or endpoint: check blossom.api_key, blossom.model and blossom.base_url)"
                    }
                    _ => "",
                };
                write!(f, "provider answered HTTP {status}: {message}{hint}")
            }
            Self::Timeout { url, after } => {
                write!(f, "no answer from {url} within {:.1}s", after.as_secs_f64())
            }
            Self::Connect { url, detail } => write!(f, "could not connect to {url}: {detail}"),
            Self::Transport { url, detail } => {
                write!(f, "connection to {url} broke: {detail}")
            }
            Self::Malformed { detail } => write!(f, "unreadable answer: {detail}"),
            Self::EmptyAnswer => f.write_str("the provider gave an empty answer"),
        }
    }
}

impl std::error::Error for ProviderError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ProviderError {
        ProviderError::Status {
            status,
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn retryable_classes() {
        for s in [429, 500, 502, 503, 520, 522, 524] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 402, 403, 404] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        assert!(ProviderError::EmptyAnswer.is_retryable());
        assert!(status(401).to_string().contains("API key"));
    }

    #[test]
    fn only_unreachable_classes_count() {
        let refused = ProviderError::Connect {
            url: "http://127.0.0.1:9".into(),
            detail: "Connection refused (os error 111)".into(),
        };
        assert!(refused.is_unreachable());
        for s in [502, 503, 504] {
            assert!(status(s).is_unreachable(), "{s}");
        }
        assert!(!ProviderError::EmptyAnswer.is_unreachable());
        assert!(!status(500).is_unreachable());
    }

    #[test]
    fn rejected_requests() {
        for s in [400, 413, 422] {
            assert!(status(s).rejects_request(), "{s}");
        }
        for s in [401, 403, 429, 500, 502] {
            assert!(!status(s).rejects_request(), "{s}");
        }
        assert!(!ProviderError::EmptyAnswer.rejects_request());
    }

    #[test]
    fn json_schema_refusals_are_recognised() {
        let refusal = |status, message: &str| ProviderError::Status {
            status,
            message: message.into(),
            retry_after: None,
        };
        assert!(refusal(400, "response_format json_schema is not supported").refuses_json_schema());
        assert!(refusal(422, "Unknown field: json_schema").refuses_json_schema());
        assert!(!refusal(400, "context length exceeded").refuses_json_schema());
        assert!(!refusal(500, "response_format").refuses_json_schema());
    }

    #[test]
    fn the_status_is_recorded_only_for_answers() {
        assert_eq!(status(503).status(), Some(503));
        assert_eq!(ProviderError::EmptyAnswer.status(), None);
    }

    #[test]
    fn classes() {
        assert_eq!(status(429).class(), ErrorClass::RateLimited);
        assert_eq!(status(500).class(), ErrorClass::ServerError);
        assert_eq!(status(524).class(), ErrorClass::ServerError);
        assert_eq!(status(400).class(), ErrorClass::ClientError);
        assert_eq!(status(404).class(), ErrorClass::ClientError);
        let timeout = ProviderError::Timeout {
            url: "u".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(timeout.class().as_str(), "timeout");
        assert_eq!(ProviderError::EmptyAnswer.class().as_str(), "empty_answer");
    }
}
