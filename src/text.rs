//! Text from outside (directory values, target answers, names in a plan file) made safe to
//! show. A `cn` is whatever someone typed into a directory: an ESC sequence in it can move
//! the cursor, erase the line above and print a fake `- user ceo` into the plan a human is
//! reviewing; a CR can overwrite a line; a bidi override can make `txt.exe` read as
//! `exe.txt`. Every renderer and the logger pass outside text through one of these before it
//! reaches a terminal, a log file, a pull-request comment or a spreadsheet.
//!
//! The escapes are visible and unambiguous enough to read: `\n`, `\r`, `\t` and `\u{1b}`
//! (Rust's spelling), so a reviewer sees that a value holds a control character instead of
//! seeing what it does.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as it is: C0 controls, DEL, C1 controls, the line
/// and paragraph separators, and the Unicode bidirectional formatting characters (embeddings,
/// overrides, isolates and marks), which reorder what is shown.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` with every unsafe character (see `is_unsafe`) written as a visible escape; borrowed
/// when there is none, which is nearly always.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `"text"`: quotes, backslashes and every unsafe character escaped, for showing a value.
pub fn quoted(s: &str) -> String {
    // Debug escapes quotes, backslashes and most controls; what it leaves printable (the bidi
    // formatting characters among them) is escaped after.
    escape_controls(&format!("{s:?}")).into_owned()
}

/// Text for Markdown outside a code span (a table cell, a note): unsafe characters escaped,
/// and every character Markdown or GitHub could read as syntax backslash-escaped, so that a
/// value can neither open raw HTML, a link, emphasis or an @-mention, nor end its table cell.
pub fn markdown_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in escape_controls(s).chars() {
        if matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '['
                | ']'
                | '<'
                | '>'
                | '&'
                | '|'
                | '~'
                | '@'
                | '#'
                | '!'
                | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Markdown code span holding `s`. Nothing is interpreted inside a code span except its
/// end and, in a table, the cell separator: backticks are shown as `'` (a span cannot hold its
/// own delimiter reliably), pipes are escaped, and backslashes doubled, so that no backslash
/// from the data can un-escape a pipe (GitHub splits table rows before it reads code spans).
pub fn markdown_code(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    out.push('`');
    for c in s.chars() {
        match c {
            '`' => out.push('\''),
            '|' => out.push_str("\\|"),
            '\\' => out.push_str("\\\\"),
            // An escape's own backslash is followed by a letter, never by a pipe.
            c if is_unsafe(c) => push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('`');
    out
}

/// A CSV cell a spreadsheet will not run: unsafe characters escaped, and a cell starting
/// with `=`, `+`, `-` or `@` (which Excel, LibreOffice and Google Sheets read as a formula)
/// prefixed with `'`, the spreadsheets' own "this is text" mark (OWASP's advice).
pub fn spreadsheet_cell(s: &str) -> Cow<'_, str> {
    let escaped = escape_controls(s);
    if escaped.starts_with(['=', '+', '-', '@']) {
        Cow::Owned(format!("'{escaped}"))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_control_is_escaped() {
        assert_eq!(
            escape_controls("a\u{1b}[1A\u{1b}[2K\r- user ceo\n"),
            "a\\u{1b}[1A\\u{1b}[2K\\r- user ceo\\n"
        );
        assert_eq!(
            escape_controls("\u{7f}\u{85}\u{9b}"),
            "\\u{7f}\\u{85}\\u{9b}"
        );
        assert_eq!(
            escape_controls("doc\u{202e}txt.exe \u{2066}x\u{2069}"),
            "doc\\u{202e}txt.exe \\u{2066}x\\u{2069}"
        );
        assert!(matches!(
            escape_controls("Zoë Ångström → Sales"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn quoted_values_escape_bidi_too() {
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
        assert_eq!(quoted("x\u{1b}y"), "\"x\\u{1b}y\"");
        assert_eq!(quoted("x\u{202e}y"), "\"x\\u{202e}y\"");
    }

    #[test]
    fn markdown_cannot_be_broken_out_of() {
        assert_eq!(
            markdown_text("<img src=x onerror=alert(1)> | @org/team [x](y)"),
            "\\<img src=x onerror=alert(1)\\> \\| \\@org/team \\[x\\](y)"
        );
        assert_eq!(markdown_text("a\\|b"), "a\\\\\\|b");
        assert_eq!(markdown_code("a`b|c\\|d"), "`a'b\\|c\\\\\\|d`");
        assert_eq!(markdown_code("x\ny"), "`x\\ny`");
    }

    #[test]
    fn formulas_become_text() {
        for formula in ["=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)"] {
            assert_eq!(spreadsheet_cell(formula), format!("'{formula}"));
        }
        assert_eq!(spreadsheet_cell("alice"), "alice");
        assert_eq!(spreadsheet_cell("\t=1"), "\\t=1");
    }
}
