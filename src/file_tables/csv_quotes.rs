//! [`scan_csv_quotes`]: finds the quoted values of a CSV file that run over line ends,
//! which the CSV reader silently reads as one value holding the following lines.

use std::io::Read;

/// What [`scan_csv_quotes`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuoteScan {
    /// The line (1-based) of a quote that is never closed: every line after it would
    /// be read into one value.
    pub unclosed_at: Option<u64>,
    /// The first quoted value that holds a line break, as (line it opens on, line it
    /// closes on).
    pub first_multiline: Option<(u64, u64)>,
    /// How many quoted values hold a line break.
    pub multiline_values: u64,
}

/// Reads CSV text as the `csv` crate (and so DataFusion's reader) does: a value that
/// starts with `quote` runs to the next lone `quote` (a doubled one, or one after
/// `escape`, is part of the value), whatever line ends it holds; a `quote` inside an
/// unquoted value is an ordinary character.
///
/// ```
/// use blossom_sql::file_tables::scan_csv_quotes;
/// let scan = scan_csv_quotes("id,text\n1,\"fine\"\n2,\"never closed\n3,x\n".as_bytes(), b',', b'"', None).unwrap();
/// assert_eq!(scan.unclosed_at, Some(3));
/// ```
pub fn scan_csv_quotes(
    mut input: impl Read,
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
) -> std::io::Result<QuoteScan> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        /// A quote inside a quoted value: it closes the value unless another follows.
        QuoteInQuoted,
        Escaped,
    }
    let mut scan = QuoteScan::default();
    let mut state = State::FieldStart;
    let mut line: u64 = 1;
    let mut opened_on = 1;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        for &byte in &buffer[..n] {
            // Lines are counted at \n, so \r\n is one line end.
            let newline = byte == b'\n' || byte == b'\r';
            match state {
                State::FieldStart | State::Unquoted => {
                    if state == State::FieldStart && byte == quote {
                        state = State::Quoted;
                        opened_on = line;
                    } else if byte == delimiter || newline {
                        state = State::FieldStart;
                    } else {
                        state = State::Unquoted;
                    }
                }
                State::Quoted => {
                    if Some(byte) == escape {
                        state = State::Escaped;
                    } else if byte == quote {
                        state = State::QuoteInQuoted;
                    }
                }
                State::Escaped => state = State::Quoted,
                State::QuoteInQuoted => {
                    if byte == quote {
                        state = State::Quoted;
                    } else {
                        if line != opened_on {
                            scan.multiline_values += 1;
                            scan.first_multiline.get_or_insert((opened_on, line));
                        }
                        state = if byte == delimiter || newline {
                            State::FieldStart
                        } else {
                            State::Unquoted
                        };
                    }
                }
            }
            if byte == b'\n' {
                line += 1;
            }
        }
    }
    match state {
        State::Quoted | State::Escaped => scan.unclosed_at = Some(opened_on),
        State::QuoteInQuoted if line != opened_on => {
            // Closed by the very last byte of the file.
            scan.multiline_values += 1;
            scan.first_multiline.get_or_insert((opened_on, line));
        }
        _ => {}
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> QuoteScan {
        scan_csv_quotes(text.as_bytes(), b',', b'"', None).expect("reads")
    }

    #[test]
    fn finds_unclosed_and_multiline_quotes() {
        assert_eq!(
            scan("a,b\n1,\"x, y\"\n2,\"say \"\"hi\"\"\"\n"),
            QuoteScan::default()
        );
        // A quote inside an unquoted value is a character like any other.
        assert_eq!(scan("a,b\n1,5\" screen\n2,x\n"), QuoteScan::default());
        assert_eq!(scan("a,b\n1,ok\n2,\"open\n3,x\n4,y\n").unclosed_at, Some(3));
        assert_eq!(scan("a,b\r\n1,\"open\r\n3,x\r\n").unclosed_at, Some(2));
        let multi = scan("a,b\n1,\"two\nlines\"\n2,\"x\"\n3,\"and\n\nmore\"\n");
        assert_eq!(multi.unclosed_at, None);
        assert_eq!(multi.first_multiline, Some((2, 3)));
        assert_eq!(multi.multiline_values, 2);
        let escaped =
            scan_csv_quotes("a\n\"x\\\"y\"\n".as_bytes(), b',', b'"', Some(b'\\')).expect("reads");
        assert_eq!(escaped, QuoteScan::default());
    }
}
