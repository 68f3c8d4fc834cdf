//! Short quotes of what a provider sent, for error messages: the helpers both the chat
//! client and the embeddings parser use, so neither imports the other.

/// `text` cut to its first 80 characters and quoted, to show in a message what an
/// unreadable answer looked like.
pub(crate) fn excerpt(text: &str) -> String {
    format!("{:?}", truncate_chars(text, 80))
}

/// The first `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_characters_and_quotes() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
        assert_eq!(excerpt("a\"b"), r#""a\"b""#);
        assert_eq!(excerpt(&"x".repeat(81)).chars().count(), 80 + 1 + 2);
    }
}
