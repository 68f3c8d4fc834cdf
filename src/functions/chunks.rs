//! Splitting a list of texts into chunks whose prompts fit in `blossom.max_prompt_chars`:
//! items stay whole and in order; only an item too long for a prompt of its own is split
//! into pieces, at whitespace where it can be. Nothing is dropped or repeated.

use std::fmt;

/// How many characters a prompt over some items takes: `fixed` for everything but the
/// items, plus, for each item, its own characters and `per_item` for what surrounds it.
///
/// ```text
/// prompt chars = fixed + Σ (per_item + chars(item))
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Characters of the prompt without any item (instructions, headers).
    pub fixed: usize,
    /// Characters around each item (its delimiters).
    pub per_item: usize,
}

impl Layout {
    /// The layout of prompts whose characters `prompt_chars` counts for given items,
    /// measured with no item and with one empty item.
    pub fn measure(prompt_chars: impl Fn(&[&str]) -> usize) -> Self {
        let fixed = prompt_chars(&[]);
        Self {
            fixed,
            per_item: prompt_chars(&[""]).saturating_sub(fixed),
        }
    }

    /// The prompt characters one item adds.
    fn cost(&self, item: &str) -> usize {
        self.per_item + item.chars().count()
    }
}

/// Why a list cannot be chunked: the prompt without items leaves no room for even one
/// character of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    /// The prompt's characters without any item text.
    pub needed: usize,
    /// The limit.
    pub max_chars: usize,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the prompt without the items already takes {} characters, which leaves no room \
             for them in blossom.max_prompt_chars = {}; raise it or shorten the instruction",
            self.needed, self.max_chars
        )
    }
}

impl std::error::Error for NoRoom {}

/// Splits `items` into chunks, in order, each of whose prompts (per `layout`) has at most
/// `max_chars` characters. A chunk holds as many whole items as fit; an item too long
/// for a prompt of its own is split by [`split_text`] and its pieces are chunked like
/// items. Every character of every item, other than whitespace at a split, appears in
/// exactly one chunk. An empty list gives no chunks.
pub fn chunk_items<'a>(
    items: &[&'a str],
    layout: Layout,
    max_chars: usize,
) -> Result<Vec<Vec<&'a str>>, NoRoom> {
    let budget = max_chars.saturating_sub(layout.fixed);
    // The most characters one item's text may have in a prompt.
    let room = budget.saturating_sub(layout.per_item);
    if room == 0 {
        return Err(NoRoom {
            needed: layout.fixed + layout.per_item,
            max_chars,
        });
    }
    let mut chunks: Vec<Vec<&'a str>> = Vec::new();
    let mut current: Vec<&'a str> = Vec::new();
    let mut used = 0;
    for &item in items {
        let pieces = if layout.cost(item) > budget {
            split_text(item, room)
        } else {
            vec![item]
        };
        for piece in pieces {
            let cost = layout.cost(piece);
            if used + cost > budget && !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
                used = 0;
            }
            current.push(piece);
            used += cost;
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Splits `text` into pieces of at most `room` characters (`room` ≥ 1), in order: each
/// piece ends at whitespace where one falls within the limit, otherwise (a word longer
/// than `room`) it is cut inside the word. Whitespace at the cuts is dropped; the pieces
/// joined hold every other character of the text exactly once.
pub fn split_text(text: &str, room: usize) -> Vec<&str> {
    let room = room.max(1);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((limit, next)) = rest.char_indices().nth(room) else {
            pieces.push(rest);
            break;
        };
        let cut = if next.is_whitespace() {
            limit
        } else {
            // `rest` starts with a non-space, so a space found is past its first byte.
            match rest[..limit].rfind(char::is_whitespace) {
                Some(space) if space > 0 => space,
                _ => limit,
            }
        };
        pieces.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: Layout = Layout {
        fixed: 10,
        per_item: 2,
    };

    fn prompt_chars(chunk: &[&str]) -> usize {
        LAYOUT.fixed + chunk.iter().map(|i| LAYOUT.cost(i)).sum::<usize>()
    }

    fn no_space(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn whole_items_in_order_and_within_the_limit() {
        // Each item costs 2 + 8 = 10; a prompt of 40 holds 3 of them (10 + 30).
        let items: Vec<String> = (0..10).map(|i| format!("item-{i:03}")).collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let chunks = chunk_items(&refs, LAYOUT, 40).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        for chunk in &chunks {
            assert!(prompt_chars(chunk) <= 40, "{chunk:?}");
        }
        assert_eq!(chunks.concat(), refs, "every item once, in order");
        // Everything fits in one prompt: one chunk.
        assert_eq!(
            chunk_items(&refs, LAYOUT, 1000).unwrap(),
            vec![refs.clone()]
        );
        // Exactly at the limit still fits.
        assert_eq!(chunk_items(&refs[..3], LAYOUT, 40).unwrap().len(), 1);
        assert_eq!(chunk_items(&refs[..3], LAYOUT, 39).unwrap().len(), 2);
        assert!(chunk_items(&[], LAYOUT, 40).unwrap().is_empty());
    }

    #[test]
    fn an_item_too_long_alone_is_split_at_whitespace() {
        let long = "alpha beta gamma delta epsilon zeta eta theta";
        let items = ["short", long, "tail"];
        // Room for one item's text: 30 - 10 - 2 = 18 characters.
        let chunks = chunk_items(&items, LAYOUT, 30).unwrap();
        for chunk in &chunks {
            assert!(prompt_chars(chunk) <= 30, "{chunk:?}");
        }
        let all = chunks.concat();
        assert_eq!(all.first(), Some(&"short"));
        assert_eq!(all.last(), Some(&"tail"));
        let pieces = &all[1..all.len() - 1];
        assert!(pieces.len() > 1, "{pieces:?}");
        assert_eq!(pieces.join(" "), long, "split at spaces, nothing dropped");
        for piece in pieces {
            assert!(piece.chars().count() <= 18, "{piece}");
            assert_eq!(piece.trim(), *piece);
        }
    }

    #[test]
    fn split_text_keeps_every_character_once() {
        assert_eq!(split_text("one two three", 7), vec!["one two", "three"]);
        assert_eq!(split_text("one two three", 8), vec!["one two", "three"]);
        assert_eq!(split_text("  one   two  ", 3), vec!["one", "two"]);
        // A word longer than the room is cut inside it.
        assert_eq!(split_text("abcdefgh ij", 3), vec!["abc", "def", "gh", "ij"]);
        assert_eq!(split_text("", 3), Vec::<&str>::new());
        // Characters, not bytes.
        assert_eq!(split_text("ééé ü", 3), vec!["ééé", "ü"]);
        let text = "Größere Änderungen über Nacht, 日本語のテキスト and\nnew\tlines 🌸🌸🌸🌸";
        for room in 1..40 {
            let pieces = split_text(text, room);
            for piece in &pieces {
                assert!(piece.chars().count() <= room, "{room}: {piece:?}");
                assert!(!piece.is_empty());
            }
            assert_eq!(no_space(&pieces.concat()), no_space(text), "{room}");
        }
    }

    #[test]
    fn nothing_is_dropped_across_many_sizes() {
        let items: Vec<String> = (0..25)
            .map(|i| "word ".repeat(i % 7 + 1) + &"x".repeat(i * 3))
            .collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        for max in [13, 20, 31, 50, 97, 400] {
            let chunks = chunk_items(&refs, LAYOUT, max).unwrap();
            for chunk in &chunks {
                assert!(!chunk.is_empty());
                assert!(prompt_chars(chunk) <= max, "{max}: {chunk:?}");
            }
            let joined: String = chunks.concat().concat();
            assert_eq!(no_space(&joined), no_space(&refs.concat()), "{max}");
        }
    }

    #[test]
    fn no_room_for_items_is_an_error() {
        let e = chunk_items(&["a"], LAYOUT, 12).unwrap_err();
        assert_eq!(
            e,
            NoRoom {
                needed: 12,
                max_chars: 12
            }
        );
        assert!(e.to_string().contains("blossom.max_prompt_chars = 12"));
        assert_eq!(chunk_items(&["a"], LAYOUT, 13).unwrap(), vec![vec!["a"]]);
    }
}
