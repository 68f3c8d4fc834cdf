//! The classes of a failed call or row, as `blossom_errors()` and `blossom_metrics()`
//! name them: one enum instead of strings compared across the crate.
//!
//! ```sql
//! SELECT error_class, count(*) FROM blossom_errors() GROUP BY error_class;
//! ```

use std::fmt;

/// Why a request or a row failed. The provider's classes come from
/// `ProviderError::class`; the others are the rows' own (an answer the function could
/// not use, a prompt too long to send).
///
/// [`ErrorClass::as_str`] is the stable name shown in `blossom_errors().error_class`
/// and counted in `blossom_metrics()`: renaming one changes what users' queries see.
///
/// ```
/// use blossom_sql::error_class::ErrorClass;
/// assert_eq!(ErrorClass::RateLimited.as_str(), "rate_limited");
/// assert_eq!(ErrorClass::parse("invalid_field"), Some(ErrorClass::InvalidField));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// The provider asked us to slow down (HTTP 429).
    RateLimited,
    /// The provider failed on its side (HTTP 5xx).
    ServerError,
    /// The provider refused the request (an HTTP 4xx other than 429).
    ClientError,
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// The connection broke before a whole answer arrived.
    Transport,
    /// A successful answer that could not be read.
    Malformed,
    /// A successful answer with empty content.
    EmptyAnswer,
    /// An answer the function refused (no JSON object, not one of the labels, ...).
    InvalidAnswer,
    /// Fields of an answer the function could not cast; the row keeps the others.
    InvalidField,
    /// A prompt that cannot be made to fit `blossom.max_prompt_chars`.
    PromptTooLong,
    /// A line of a streaming source that is no record of the table's schema.
    MalformedRecord,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: [Self; 12] = [
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
        Self::MalformedRecord,
    ];

    /// The class's stable name, as logs, `blossom_errors()` and `blossom_metrics()`
    /// show it.
    pub const fn as_str(self) -> &'static str {
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
            Self::MalformedRecord => "malformed_record",
        }
    }

    /// The class named `name` (as [`ErrorClass::as_str`] writes it), if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == name)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error and its causes on one line, `a: b: c`; a cause whose text the line holds
/// already is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_name_round_trips_and_is_unique() {
        let mut seen = HashSet::new();
        for class in ErrorClass::ALL {
            let name = class.as_str();
            assert!(seen.insert(name), "{name} named twice");
            assert_eq!(ErrorClass::parse(name), Some(class));
            assert_eq!(class.to_string(), name);
        }
        assert_eq!(ErrorClass::parse("no_such_class"), None);
    }

    #[test]
    fn all_lists_the_variants_in_declaration_order() {
        // No gap and no repeat: a variant added in the middle without being listed
        // shifts the discriminants after it.
        for (position, class) in ErrorClass::ALL.into_iter().enumerate() {
            assert_eq!(class as usize, position, "{class}");
        }
    }
}
