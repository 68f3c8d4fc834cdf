//! The cluster's shared secret, `BLOSSOM_CLUSTER_TOKEN`: a worker accepts plans, and a
//! coordinator's limiter accepts requests, only from a peer that presents it as
//! `authorization: Bearer <token>`. It is read from each process's own environment and
//! never travels in a plan, a setting or a report; its `Debug` and `Display` show
//! `<redacted>`.
//!
//! ```
//! use blossom_sql::cluster_token::ClusterToken;
//! let token = ClusterToken::new("s3cret-s3cret").unwrap();
//! assert!(token.accepts(Some("Bearer s3cret-s3cret")));
//! assert!(!token.accepts(Some("Bearer guess")));
//! assert!(!token.accepts(None));
//! assert_eq!(format!("{token:?}"), "ClusterToken(<redacted>)");
//! ```

use std::fmt;

use crate::redact::REDACTED;

/// The environment variable that holds the token.
pub const CLUSTER_TOKEN_ENV: &str = "BLOSSOM_CLUSTER_TOKEN";

/// The header that carries it.
pub const AUTHORIZATION: &str = "authorization";

/// The cluster's token.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken(String);

/// Why a token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterTokenError {
    /// `BLOSSOM_CLUSTER_TOKEN` is not set, or empty.
    Missing,
    /// Shorter than [`ClusterToken::MIN_LEN`] characters.
    TooShort,
    /// Not printable ASCII: it could not travel as an HTTP or gRPC header.
    NotAscii,
}

impl fmt::Display for ClusterTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "{CLUSTER_TOKEN_ENV} is not set"),
            Self::TooShort => write!(
                f,
                "{CLUSTER_TOKEN_ENV} is shorter than {} characters",
                ClusterToken::MIN_LEN
            ),
            Self::NotAscii => write!(
                f,
                "{CLUSTER_TOKEN_ENV} holds characters other than printable ASCII"
            ),
        }
    }
}

impl std::error::Error for ClusterTokenError {}

impl ClusterToken {
    /// The shortest token accepted.
    pub const MIN_LEN: usize = 8;

    /// `token`, checked: at least [`Self::MIN_LEN`] printable ASCII characters, no spaces.
    pub fn new(token: &str) -> Result<Self, ClusterTokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ClusterTokenError::Missing);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClusterTokenError::NotAscii);
        }
        if token.len() < Self::MIN_LEN {
            return Err(ClusterTokenError::TooShort);
        }
        Ok(Self(token.to_string()))
    }

    /// The token in `BLOSSOM_CLUSTER_TOKEN`.
    pub fn from_env() -> Result<Self, ClusterTokenError> {
        match std::env::var(CLUSTER_TOKEN_ENV) {
            Ok(value) => Self::new(&value),
            Err(_) => Err(ClusterTokenError::Missing),
        }
    }

    /// The value of the `authorization` header that presents it.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether an `authorization` header value presents this token. The comparison
    /// takes the same time wherever the first difference is.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let (a, b) = (presented.as_bytes(), self.0.as_bytes());
        let mut differ = a.len() ^ b.len();
        for (i, byte) in b.iter().enumerate() {
            differ |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
        }
        differ == 0
    }

    /// The token itself, to scrub it from text a peer sends back.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterToken({REDACTED})")
    }
}

impl fmt::Display for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_spaced_or_non_ascii_tokens_are_refused() {
        assert_eq!(ClusterToken::new(""), Err(ClusterTokenError::Missing));
        assert_eq!(ClusterToken::new("short"), Err(ClusterTokenError::TooShort));
        assert_eq!(
            ClusterToken::new("has a space"),
            Err(ClusterTokenError::NotAscii)
        );
        assert_eq!(
            ClusterToken::new("tökentoken"),
            Err(ClusterTokenError::NotAscii)
        );
    }

    #[test]
    fn only_the_same_token_is_accepted() {
        let token = ClusterToken::new("0123456789").unwrap();
        assert!(token.accepts(Some("Bearer 0123456789")));
        assert!(!token.accepts(Some("Bearer 012345678")));
        assert!(!token.accepts(Some("Bearer 01234567890")));
        assert!(!token.accepts(Some("0123456789")));
        assert!(!token.accepts(Some("Basic 0123456789")));
        assert_eq!(token.to_string(), REDACTED);
    }
}
