//! [`looks_like_path`]: whether a table name in a query is a file path or URL.

/// True for a table name that names a file rather than a table: it holds a `/` (or `\`),
/// starts with a URL scheme (`s3://`, `file://`), or ends with a file extension
/// (`reviews.csv`, `part-0.parquet`, `x.csv.gz`). `data`, `reviews` or `my_table` are
/// table names, resolved by the catalog only.
///
/// ```
/// use blossom_sql::file_tables::looks_like_path;
/// assert!(looks_like_path("data/reviews.csv"));
/// assert!(looks_like_path("reviews.csv"));
/// assert!(looks_like_path("s3://bucket/x"));
/// assert!(!looks_like_path("data"));
/// ```
pub fn looks_like_path(name: &str) -> bool {
    if name.contains('/') || name.contains('\\') {
        return true;
    }
    if let Some((scheme, _)) = name.split_once("://") {
        return !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    }
    match name.rsplit_once('.') {
        Some((stem, extension)) => {
            !stem.is_empty()
                && (1..=8).contains(&extension.len())
                && extension.chars().all(|c| c.is_ascii_alphanumeric())
                && extension.chars().any(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_urls_and_file_names_only() {
        for path in [
            "data/reviews.csv",
            "./x",
            "/tmp/out/",
            "C:\\data\\x.csv",
            "reviews.csv",
            "part-0.parquet",
            "x.csv.gz",
            "s3://bucket/key",
            "file:///tmp/x",
            "data/*.json",
        ] {
            assert!(looks_like_path(path), "{path}");
        }
        for name in [
            "data", "reviews", "my_table", "t1", "v.", ".hidden", "a.123", "",
        ] {
            assert!(!looks_like_path(name), "{name}");
        }
    }
}
