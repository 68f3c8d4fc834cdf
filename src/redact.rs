//! Secrets kept out of text: an API key or any bearer token a provider repeats in its
//! answer is scrubbed before the answer is stored, logged or shown, and the value of
//! `SET blossom.api_key = '...'`, like the password of a URL (`redis://:pw@host`), is
//! redacted wherever a statement is echoed (the `--report` file, the shell's history).
//!
//! ```sql
//! SET blossom.api_key = 'sk-...'; -- the history file and the report keep
//!                                 -- SET blossom.api_key = '<redacted>'
//! ```

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// An HTTP credential after its scheme: `Bearer sk-...`, `Basic dXNl...`.
static CREDENTIAL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer|basic)(\s+|%20|\\u0020)[A-Za-z0-9._~+/=\-]{6,}").ok()
});

/// The value given to `blossom.api_key` by `SET`, quoted or not.
static SET_API_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"(?i)(blossom\.api_key\s*(?:=|\bTO\b)\s*)('(?:[^']|'')*'?|"[^"]*"?|[^\s;]+)"#).ok()
});

/// The password of a URL: `scheme://user:` (group 1), the password up to the last `@`
/// of the authority.
static URL_PASSWORD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:'"]*:)[^\s/?#'"]*@"#).ok());

/// `text` with the password of every URL in it (`scheme://user:password@host`)
/// replaced by `<redacted>`.
///
/// ```
/// use blossom_sql::redact::redact_url_passwords;
/// assert_eq!(
///     redact_url_passwords("SET blossom.cache = 'redis://:p@ss@10.0.0.5:6379/0'"),
///     "SET blossom.cache = 'redis://:<redacted>@10.0.0.5:6379/0'"
/// );
/// ```
pub fn redact_url_passwords(text: &str) -> Cow<'_, str> {
    match URL_PASSWORD.as_ref() {
        Some(password) if password.is_match(text) => Cow::Owned(
            password
                .replace_all(text, |caps: &regex::Captures<'_>| {
                    format!("{}{REDACTED}@", &caps[1])
                })
                .into_owned(),
        ),
        _ => Cow::Borrowed(text),
    }
}

/// `text` with every occurrence of `secret` and every bearer or basic credential
/// replaced by `<redacted>`.
///
/// ```
/// use blossom_sql::redact::scrub;
/// let echoed = r#"{"error": "bad key", "headers": {"authorization": "Bearer sk-123456"}}"#;
/// assert_eq!(
///     scrub(echoed, Some("sk-123456")),
///     r#"{"error": "bad key", "headers": {"authorization": "Bearer <redacted>"}}"#
/// );
/// ```
pub fn scrub<'a>(text: &'a str, secret: Option<&str>) -> Cow<'a, str> {
    let mut text = Cow::Borrowed(text);
    if let Some(secret) = secret.map(str::trim).filter(|s| !s.is_empty())
        && text.contains(secret)
    {
        text = Cow::Owned(text.replace(secret, REDACTED));
    }
    if let Some(credential) = CREDENTIAL.as_ref()
        && credential.is_match(&text)
    {
        let replaced = credential
            .replace_all(&text, |caps: &regex::Captures<'_>| {
                format!("{}{}{REDACTED}", &caps[1], &caps[2])
            })
            .into_owned();
        text = Cow::Owned(replaced);
    }
    text
}

/// `sql` with the value of every `SET blossom.api_key = ...` replaced by
/// `'<redacted>'`, and the password of every URL in it (a Redis cache's) too.
///
/// ```
/// use blossom_sql::redact::redact_sql;
/// assert_eq!(
///     redact_sql("SET blossom.api_key = 'sk-1'; SELECT 1"),
///     "SET blossom.api_key = '<redacted>'; SELECT 1"
/// );
/// ```
pub fn redact_sql(sql: &str) -> Cow<'_, str> {
    let sql = match SET_API_KEY.as_ref() {
        Some(set) if set.is_match(sql) => Cow::Owned(
            set.replace_all(sql, |caps: &regex::Captures<'_>| {
                format!("{}'{REDACTED}'", &caps[1])
            })
            .into_owned(),
        ),
        _ => Cow::Borrowed(sql),
    };
    match redact_url_passwords(&sql) {
        Cow::Borrowed(_) => sql,
        Cow::Owned(redacted) => Cow::Owned(redacted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_the_key_and_any_credential() {
        let key = "sk-live-abcdef123456";
        for echoed in [
            format!("<html><pre>Authorization: Bearer {key}</pre></html>"),
            format!(r#"{{"headers":{{"authorization":"bearer {key}"}}}}"#),
            format!("your key {key} is not valid"),
            "Authorization: Bearer other-token-0987654321".to_string(),
            "Authorization: Basic dXNlcjpwYXNzd29yZA==".to_string(),
        ] {
            let scrubbed = scrub(&echoed, Some(key));
            assert!(!scrubbed.contains(key), "{scrubbed}");
            assert!(!scrubbed.contains("other-token"), "{scrubbed}");
            assert!(!scrubbed.contains("dXNlcjpw"), "{scrubbed}");
            assert!(scrubbed.contains(REDACTED), "{scrubbed}");
        }
        assert!(matches!(scrub("POSITIVE", Some(key)), Cow::Borrowed(_)));
        assert_eq!(scrub("a bearer of news", None), "a bearer of news");
    }

    #[test]
    fn redacts_set_api_key_in_every_spelling() {
        for (sql, expected) in [
            (
                "SET blossom.api_key = 'sk-1'",
                "SET blossom.api_key = '<redacted>'",
            ),
            (
                "set BLOSSOM.API_KEY='it''s secret';",
                "set BLOSSOM.API_KEY='<redacted>';",
            ),
            (
                "SET blossom.api_key TO \"sk-2\"",
                "SET blossom.api_key TO '<redacted>'",
            ),
            (
                "SET blossom.api_key = sk-3; SELECT 1",
                "SET blossom.api_key = '<redacted>'; SELECT 1",
            ),
            ("SET blossom.model = 'x'", "SET blossom.model = 'x'"),
            (
                "SET blossom.cache = 'redis://:pw@h:6379/0'; SELECT 1",
                "SET blossom.cache = 'redis://:<redacted>@h:6379/0'; SELECT 1",
            ),
            (
                "SET blossom.cache = 'redis://u:a@b@h/0'",
                "SET blossom.cache = 'redis://u:<redacted>@h/0'",
            ),
            ("SELECT 'http://h:80/x@y'", "SELECT 'http://h:80/x@y'"),
        ] {
            assert_eq!(redact_sql(sql), expected);
        }
    }
}
