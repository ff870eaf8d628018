//! How deep the blocks of a KDL text nest, found before the text is handed to kdl.
//!
//! kdl parses child blocks recursively (and the document it builds is dropped recursively),
//! so a text of a few thousand nested blocks overflows the stack and aborts the process
//! before any problem can be reported. A roster config nests blocks two deep; this scan
//! refuses anything deeper than `MAX_DEPTH` with a diagnostic instead. It skips braces in
//! strings (quoted, raw `#"..."#`, multi-line `"""`) and comments (`//`, nested `/* */`)
//! as well as it can without parsing; a text it misjudges is still parsed by kdl, which has
//! the last word on what is valid.

use miette::SourceSpan;

/// Far more than any config needs, far less than what overflows a thread's stack.
pub(super) const MAX_DEPTH: usize = 64;

/// Where the text first opens a block deeper than `MAX_DEPTH`: the span of that `{`.
pub(super) fn too_deep(text: &str) -> Option<SourceSpan> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        at = match bytes[at] {
            b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(SourceSpan::from((at, 1)));
                }
                at + 1
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                at + 1
            }
            b'/' if bytes.get(at + 1) == Some(&b'/') => line_end(bytes, at),
            b'/' if bytes.get(at + 1) == Some(&b'*') => block_comment_end(bytes, at),
            b'#' | b'"' => string_end(bytes, at),
            _ => at + 1,
        };
    }
    None
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| from + i + 1)
}

/// After a `/* ... */` comment, which may hold other block comments.
fn block_comment_end(bytes: &[u8], from: usize) -> usize {
    let mut depth = 0usize;
    let mut at = from;
    while at + 1 < bytes.len() {
        match (bytes[at], bytes[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return at;
                }
            }
            _ => at += 1,
        }
    }
    bytes.len()
}

/// After the string that starts at `from` (`"..."`, `"""..."""`, or raw with `#`s); just
/// past `from` when it is a `#` that starts no string (`#true`). A single-line string ends
/// at a line end even without its closing quote: kdl stops it there too and goes on
/// parsing what follows, blocks included (the config fuzzer found a text whose unclosed
/// quote hid thousands of nested blocks from this scan). Erring this way can only count a
/// brace too many, never one too few.
fn string_end(bytes: &[u8], from: usize) -> usize {
    let hashes = bytes[from..].iter().take_while(|&&b| b == b'#').count();
    let quote = from + hashes;
    if bytes.get(quote) != Some(&b'"') {
        return from + hashes.max(1);
    }
    let multi_line = bytes[quote..].starts_with(b"\"\"\"");
    let opening = if multi_line { 3 } else { 1 };
    let mut closing = vec![b'"'; opening];
    closing.extend(std::iter::repeat_n(b'#', hashes));
    let mut at = quote + opening;
    while at < bytes.len() {
        if !multi_line && matches!(bytes[at], b'\n' | b'\r') {
            return at;
        }
        if hashes == 0 && bytes[at] == b'\\' {
            at += 2;
            continue;
        }
        if bytes[at..].starts_with(&closing) {
            return at + closing.len();
        }
        at += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("a {}{}", "b { ".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn counts_block_depth() {
        assert_eq!(too_deep(&nested(MAX_DEPTH)), None);
        let deep = nested(MAX_DEPTH + 1);
        let at = too_deep(&deep).expect("too deep");
        assert_eq!(at.offset(), 2 + 4 * MAX_DEPTH + 2);
        assert_eq!(&deep[at.offset()..at.offset() + 1], "{");
        assert!(too_deep(&nested(5_000)).is_some());
    }

    #[test]
    fn an_unclosed_quote_ends_at_the_line_end() {
        for open in ["\"", "#\""] {
            let text = format!("a {open}open\n{}", "b {\n".repeat(MAX_DEPTH + 1));
            assert!(
                too_deep(&text).is_some(),
                "{open}: the blocks after the line count"
            );
        }
    }

    #[test]
    fn closed_blocks_do_not_add_up() {
        let siblings = "a { b { } }\n".repeat(MAX_DEPTH * 2);
        assert_eq!(too_deep(&siblings), None);
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_count() {
        let braces = "{".repeat(MAX_DEPTH + 1);
        for text in [
            format!("a \"{braces}\""),
            format!("a \"\\\"{braces}\""),
            format!("a #\"\"{braces}\"#"),
            format!("a \"\"\"\n{braces}\n\"\"\""),
            format!("// {braces}\na 1"),
            format!("/* /* */ {braces} */ a 1"),
            format!("a #true {{ b \"{braces}\" }}"),
        ] {
            assert_eq!(too_deep(&text), None, "{text}");
        }
    }
}
