//! Hook text shown to people: denials, errors, verdicts, log lines and
//! panic output. A hook may write anything, so what reaches a console or a
//! result is cut to a documented length and has its control characters
//! escaped: no terminal escape sequences, no fake lines of podrun's own.

/// The most bytes of one hook message shown (denials, errors, verdict
/// reasons and messages, evidence lines).
pub const MESSAGE_LIMIT: usize = 4096;

/// `text` on one line: control characters (newlines included) and
/// invisible direction marks escaped, cut to `limit` bytes with `…`.
pub fn shown(text: &str, limit: usize) -> String {
    escape(text, limit, false)
}

/// Like [`shown`], but keeps newlines (for multi-line output such as a
/// panic message, which is shown indented).
pub fn shown_lines(text: &str, limit: usize) -> String {
    escape(text, limit, true)
}

fn escape(text: &str, limit: usize, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len().min(limit) + 8);
    for c in text.chars() {
        let before = out.len();
        if keep_newlines && c == '\n' {
            out.push('\n');
        } else if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > limit {
            out.truncate(before);
            out.push('…');
            break;
        }
    }
    out
}

/// Control characters, and the format characters that reorder or hide
/// text on a terminal (bidirectional overrides, zero-width marks).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_direction_marks() {
        assert_eq!(
            shown("ok\n\x1b[2Kpodrun: run succeeded\r", 100),
            "ok\\n\\u{1b}[2Kpodrun: run succeeded\\r"
        );
        assert_eq!(shown("a\u{202e}b", 100), "a\\u{202e}b");
        assert_eq!(shown_lines("a\nb\x07", 100), "a\nb\\u{7}");
        assert_eq!(shown("plain — text", 100), "plain — text");
    }

    #[test]
    fn cuts_at_the_limit_on_a_character_boundary() {
        let cut = shown(&"é".repeat(100), 11);
        assert_eq!(cut, format!("{}…", "é".repeat(5)));
        let big = shown(&"\x1b".repeat(10 << 20), MESSAGE_LIMIT);
        assert!(big.len() <= MESSAGE_LIMIT + '…'.len_utf8());
    }
}
