//! [`ErrorClass`]: why a request or a row failed, as `blossom_errors().error_class` and
//! `blossom_metrics()` name it.

use std::fmt;

/// The class of a failure. Its string ([`ErrorClass::as_str`]) is what users filter on:
///
/// ```sql
/// SELECT input, message FROM blossom_errors() WHERE error_class = 'rate_limited';
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The provider answered 429.
    RateLimited,
    /// The provider answered 5xx.
    ServerError,
    /// The provider answered another 4xx.
    ClientError,
    /// No answer within `blossom.request_timeout`.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// The connection broke, or the body could not be read.
    Transport,
    /// An answer that is not the protocol's JSON.
    Malformed,
    /// An answer without content.
    EmptyAnswer,
    /// An answer the function refused (not one of the labels, not the JSON asked for).
    InvalidAnswer,
    /// Fields of a structured answer that could not be used; the rest is kept.
    InvalidField,
    /// A text too long for `blossom.max_prompt_chars` on its own.
    PromptTooLong,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: [ErrorClass; 11] = [
        Self::RateLimited,
        Self::ServerError,
        Self::ClientError,
        Self::Timeout,
        Self::Connect,
        Self::Transport,
        Self::Malformed,
        Self::EmptyAnswer,
        Self::InvalidAnswer,
        Self::InvalidField,
        Self::PromptTooLong,
    ];

    /// The class's name in SQL results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::ClientError => "client_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Transport => "transport",
            Self::Malformed => "malformed",
            Self::EmptyAnswer => "empty_answer",
            Self::InvalidAnswer => "invalid_answer",
            Self::InvalidField => "invalid_field",
            Self::PromptTooLong => "prompt_too_long",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_own_name() {
        let mut names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorClass::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
