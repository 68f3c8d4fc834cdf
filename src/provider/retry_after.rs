//! Reading how long a provider asks us to wait: the `Retry-After` header (seconds or an
//! HTTP date) and the `retryAfterSeconds` field Pollinations puts in its JSON body.

use std::time::{Duration, SystemTime};

/// The longest wait we accept from a provider; anything longer is capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The wait a provider asks for, from the `Retry-After` header value and/or the body.
///
/// ```
/// use std::time::Duration;
/// use blossom_sql::provider::parse_retry_after;
/// assert_eq!(parse_retry_after(Some("2"), ""), Some(Duration::from_secs(2)));
/// assert_eq!(
///     parse_retry_after(None, r#"{"error":"slow down","retryAfterSeconds":1.5}"#),
///     Some(Duration::from_millis(1500))
/// );
/// ```
pub fn parse_retry_after(header: Option<&str>, body: &str) -> Option<Duration> {
    let from_header = header.and_then(parse_header);
    let from_body = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| find_retry_after_seconds(&v))
        .and_then(seconds);
    from_header.max(from_body).map(|d| d.min(MAX_RETRY_AFTER))
}

fn parse_header(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let when = httpdate(value)?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn find_retry_after_seconds(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Object(map) => map
            .get("retryAfterSeconds")
            .and_then(serde_json::Value::as_f64)
            .or_else(|| map.values().find_map(find_retry_after_seconds)),
        _ => None,
    }
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e6)))
}

/// Parses an IMF-fixdate such as `Wed, 21 Oct 2015 07:28:00 GMT`.
fn httpdate(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // A year too far ahead to count in seconds (or to add to the epoch) is no date.
    let days = era
        .checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)?;
    let secs = days
        .checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + s)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_seconds_and_body_field() {
        assert_eq!(
            parse_retry_after(Some(" 3 "), ""),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(Some("1"), r#"{"retryAfterSeconds": 4}"#),
            Some(Duration::from_secs(4)),
            "the longer of header and body wins"
        );
        assert_eq!(
            parse_retry_after(None, r#"{"error":{"retryAfterSeconds":2}}"#),
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse_retry_after(Some("soon"), "not json"), None);
        assert_eq!(parse_retry_after(Some("-5"), ""), None);
        assert_eq!(parse_retry_after(Some("999999"), ""), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn http_date() {
        assert_eq!(
            httpdate("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), ""),
            Some(Duration::ZERO),
            "a date in the past means retry now"
        );
        // Found by the property tests: years past what a SystemTime holds panicked.
        assert_eq!(httpdate("Wed, 1 Oct 292277026597 0:0:0 GMT"), None);
        assert_eq!(httpdate("Wed, 1 Oct 18446744073709551615 0:0:0 GMT"), None);
    }
}
