//! An LDIF export (RFC 2849) as a source of users: `slapcat`, `ldapsearch -LLL`, `ldifde -f`.
//!
//! LDIF is how directories hand over a snapshot when nobody may bind to them, so it is read
//! the way an LDAP search result is: one record per entry, the DN as its origin, attribute
//! names case-insensitive, values in the same text forms the LDAP source produces.
//!
//! No crate for LDIF is dominant, and the subset a content export uses is small, so the
//! parser is here: `dn:` starting each record, `attr: value`, `attr:: base64`, lines folded
//! with a leading space, `#` comments (folded too), blank lines between records, and
//! `version: 1` before the first record. `changetype: add` (which `ldifde` writes on every
//! record) is accepted; any other change record (modify, delete, moddn) is refused, since a
//! change file says what to do to a directory, not what it holds. `attr:< URL` is refused
//! too: roster does not fetch values from elsewhere.
//!
//! How values become strings, as in `ldap.rs`: `objectGUID` is rendered from its bytes as
//! the GUID string; another base64 value is its text when it is UTF-8, else lowercase hex.
//! A plain (not base64) `objectGUID` is raw bytes only when it is 16 bytes long; any other
//! length is taken as a GUID someone already wrote as text, and kept as it is.
//!
//! Errors name the file and the line, and end the read: a partly read export must not be
//! planned from. That includes a file that looks cut (issue 11.5): one whose last line has
//! no line end (every tool that writes LDIF ends its lines; a copy or a write that stopped
//! part-way does not), and one with a NUL byte anywhere, which no text export holds (binary
//! values are base64, `attr:: ...`). A file cut exactly at a line end cannot be told from a
//! whole one; the source shrink guard is what stands against losing entries that way.

use std::fs::File;
use std::io::{BufRead, BufReader};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::config::LdifSource;
use crate::model::SourceRecord;

use super::ldap::{is_guid_attribute, render_binary};
use super::{Source, SourceError};

/// An LDIF file of entries.
pub struct LdifFile {
    config: LdifSource,
}

impl LdifFile {
    /// Keeps the settings; the file is not opened until `read_users`.
    pub fn new(config: LdifSource) -> Self {
        LdifFile { config }
    }

    fn path(&self) -> String {
        self.config.path.value.display().to_string()
    }
}

impl Source for LdifFile {
    fn describe(&self) -> String {
        self.path()
    }

    fn read_users(
        &mut self,
        attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let path = self.path();
        let file = File::open(&self.config.path.value).map_err(|e| SourceError::File {
            path: path.clone(),
            line: None,
            message: format!("cannot open: {e}"),
        })?;
        let read = parse(BufReader::new(file), attrs, sink).map_err(|e| SourceError::File {
            path: path.clone(),
            line: e.line,
            message: e.message,
        })?;
        log::debug!("read {read} entries from {path}");
        Ok(read)
    }
}

/// A problem at a line of the file (`None`: the file itself, e.g. an I/O error).
#[derive(Debug, PartialEq, Eq)]
struct LineError {
    line: Option<u64>,
    message: String,
}

fn at(line: u64, message: impl Into<String>) -> LineError {
    LineError {
        line: Some(line),
        message: message.into(),
    }
}

/// Reads LDIF from `input`, handing each entry to `sink`. Only attributes in `attrs` are kept
/// (all of them when `attrs` is empty). Returns the number of entries.
fn parse(
    mut input: impl BufRead,
    attrs: &[String],
    sink: &mut dyn FnMut(SourceRecord),
) -> Result<u64, LineError> {
    let mut parser = Parser {
        attrs,
        sink,
        record: None,
        seen_any: false,
        read: 0,
    };
    // The logical line being gathered (a line and its continuations) and where it starts;
    // `None` inside a comment, whose continuations are dropped with it.
    let mut pending: Option<(u64, String)> = None;
    let mut in_comment = false;
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).map_err(|e| LineError {
            line: Some(number + 1),
            message: format!("read failed: {e}"),
        })?;
        if n == 0 {
            break;
        }
        number += 1;
        if buf.contains(&0) {
            return Err(at(
                number,
                "a NUL byte: an LDIF export never holds one (binary values are base64, \
                 `attr:: ...`); the file is damaged or not LDIF",
            ));
        }
        if !buf.ends_with(b"\n") {
            return Err(at(
                number,
                "the last line has no line end, so the file may have been cut short while it \
                 was written or copied; if it is complete, end it with a newline",
            ));
        }
        let bytes = strip_line_end(&buf);
        let bytes = match (number, bytes) {
            (1, [0xef, 0xbb, 0xbf, rest @ ..]) => rest,
            _ => bytes,
        };
        let line = std::str::from_utf8(bytes).map_err(|_| {
            at(
                number,
                "not valid UTF-8; values that are not text belong base64-encoded (`attr:: ...`)",
            )
        })?;
        if let Some(rest) = line.strip_prefix(' ') {
            match &mut pending {
                Some((_, text)) => text.push_str(rest),
                None if in_comment => {}
                None => {
                    return Err(at(
                        number,
                        "a continuation line (starting with a space) follows no attribute line",
                    ));
                }
            }
            continue;
        }
        if let Some((start, text)) = pending.take() {
            parser.line(start, &text)?;
        }
        in_comment = line.starts_with('#');
        if line.is_empty() {
            parser.end_record();
        } else if !in_comment {
            pending = Some((number, line.to_string()));
        }
    }
    if let Some((start, text)) = pending.take() {
        parser.line(start, &text)?;
    }
    parser.end_record();
    Ok(parser.read)
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

struct Parser<'a> {
    attrs: &'a [String],
    sink: &'a mut dyn FnMut(SourceRecord),
    /// The entry being read, once its `dn:` line has been seen.
    record: Option<SourceRecord>,
    /// Whether any line other than a comment has been read (`version:` must come first).
    seen_any: bool,
    read: u64,
}

impl Parser<'_> {
    /// One logical line (continuations joined) that starts at line `number`.
    fn line(&mut self, number: u64, text: &str) -> Result<(), LineError> {
        let first = !self.seen_any;
        self.seen_any = true;
        let (name, value) = split(number, text)?;
        let lower = name.to_ascii_lowercase();
        let Some(record) = &mut self.record else {
            return match lower.as_str() {
                "dn" => {
                    self.record = Some(SourceRecord::new(value.text(number, "dn")?));
                    Ok(())
                }
                "version" if first => match value {
                    Value::Text(v) if v.trim() == "1" => Ok(()),
                    _ => Err(at(number, "only LDIF `version: 1` is supported")),
                },
                _ => Err(at(
                    number,
                    format!(
                        "a record without a dn: it starts with `{name}:`; every record starts \
                         with a `dn:` line, and records are separated by a blank line"
                    ),
                )),
            };
        };
        match lower.as_str() {
            "dn" => Err(at(
                number,
                format!(
                    "a second dn in the record of {}; records are separated by a blank line",
                    record.origin
                ),
            )),
            "changetype" => match value.text(number, "changetype")?.trim() {
                // ldifde writes `changetype: add` on every entry it exports.
                "add" => Ok(()),
                other => Err(at(
                    number,
                    format!(
                        "a change record (changetype: {other}); roster reads exports of entries \
                         (slapcat, ldapsearch -LLL, ldifde -f), not change files"
                    ),
                )),
            },
            "control" => Err(at(
                number,
                "a change record (control:); roster reads exports of entries (slapcat, \
                 ldapsearch -LLL, ldifde -f), not change files",
            )),
            _ if self.attrs.is_empty() || self.attrs.contains(&lower) => {
                let rendered = value.render(number, &lower)?;
                record.push(&lower, rendered);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn end_record(&mut self) {
        if let Some(record) = self.record.take() {
            (self.sink)(record);
            self.read += 1;
        }
    }
}

/// A value as written after the attribute name.
enum Value<'t> {
    /// `attr: text`
    Text(&'t str),
    /// `attr:: base64`
    Base64(&'t str),
}

impl Value<'_> {
    fn bytes(&self, number: u64, name: &str) -> Result<Vec<u8>, LineError> {
        match self {
            Value::Text(text) => Ok(text.as_bytes().to_vec()),
            Value::Base64(encoded) => {
                let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
                BASE64
                    .decode(compact)
                    .map_err(|e| at(number, format!("`{name}::` is not valid base64: {e}")))
            }
        }
    }

    /// The value as text, for values that must be text (the DN, changetype).
    fn text(&self, number: u64, name: &str) -> Result<String, LineError> {
        match self {
            Value::Text(text) => Ok((*text).to_string()),
            Value::Base64(_) => String::from_utf8(self.bytes(number, name)?)
                .map_err(|_| at(number, format!("`{name}::` is not UTF-8 text once decoded"))),
        }
    }

    /// The value as `SourceRecord` holds it (see the module doc for binary values).
    fn render(&self, number: u64, lower_name: &str) -> Result<String, LineError> {
        match self {
            Value::Text(text) if is_guid_attribute(lower_name) && text.len() == 16 => {
                Ok(render_binary(lower_name, text.as_bytes()))
            }
            Value::Text(text) => Ok((*text).to_string()),
            Value::Base64(_) => {
                let bytes = self.bytes(number, lower_name)?;
                if is_guid_attribute(lower_name) {
                    return Ok(render_binary(lower_name, &bytes));
                }
                Ok(String::from_utf8(bytes)
                    .unwrap_or_else(|e| render_binary(lower_name, e.as_bytes())))
            }
        }
    }
}

/// `name: value`, `name:: base64`; `name:< url` is refused.
fn split(number: u64, text: &str) -> Result<(&str, Value<'_>), LineError> {
    let Some((name, rest)) = text.split_once(':') else {
        return Err(at(
            number,
            format!(
                "expected `attribute: value`, found {:?}",
                text.chars().take(40).collect::<String>()
            ),
        ));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ';' | '.' | '_'))
    {
        return Err(at(
            number,
            format!("{name:?} is not an attribute name; expected `attribute: value`"),
        ));
    }
    let value = if let Some(encoded) = rest.strip_prefix(':') {
        Value::Base64(encoded.trim())
    } else if let Some(url) = rest.strip_prefix('<') {
        return Err(at(
            number,
            format!(
                "`{name}:<` takes the value from a URL ({}), which roster does not fetch; put \
                 the value in the file, base64-encoded if needed (`{name}:: ...`)",
                url.trim()
            ),
        ));
    } else {
        Value::Text(rest.trim_start_matches(' '))
    };
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<SourceRecord>, LineError> {
        let mut records = Vec::new();
        parse(text.as_bytes(), &[], &mut |r| records.push(r))?;
        Ok(records)
    }

    #[test]
    fn folded_lines_join_and_comments_fold_too() {
        let records = read(
            "version: 1\n\n# a comment\n  folded into the comment\ndn: uid=a,dc=x\ncn: Al\n \
             ice\n\n\n",
        )
        .expect("valid LDIF");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].origin, "uid=a,dc=x");
        assert_eq!(records[0].values("cn"), ["Alice"]);
    }

    #[test]
    fn crlf_line_ends_and_a_bom_are_accepted() {
        let records =
            read("\u{feff}dn: uid=a\r\nuid: a\r\n\r\ndn: uid=b\r\nuid: b\r\n").expect("valid LDIF");
        let uids: Vec<_> = records.iter().map(|r| r.values("uid")).collect();
        assert_eq!(uids, [["a"], ["b"]]);
    }

    #[test]
    fn changetype_add_is_an_entry_and_modify_is_refused() {
        let records = read("dn: cn=a\nchangetype: add\ncn: a\n").expect("valid LDIF");
        assert!(records[0].values("changetype").is_empty());
        let err = read("dn: cn=a\nchangetype: modify\nreplace: cn\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("change record"), "{}", err.message);
    }

    #[test]
    fn a_cut_file_or_a_nul_byte_is_refused_with_the_line() {
        // Each case: the text, and the line the error names.
        let cases: &[(&str, u64, &str)] = &[
            (
                "dn: uid=a\nuid: a\n\ndn: uid=b\nmail: b@exa",
                5,
                "no line end",
            ),
            ("dn: uid=a\nuid: a", 2, "no line end"),
            ("dn: uid=a\r\nuid: a\r", 2, "no line end"),
            ("dn: uid=a\nmail: a\0@x.org\n\n", 2, "NUL byte"),
            ("dn: uid=a\n\0", 2, "NUL byte"),
        ];
        for (text, line, want) in cases {
            let err = read(text).expect_err(text);
            assert_eq!(err.line, Some(*line), "{text:?}");
            assert!(err.message.contains(want), "{text:?}: {}", err.message);
        }
        assert_eq!(read("dn: uid=a\nuid: a\n").expect("whole").len(), 1);
        assert_eq!(read("").expect("empty").len(), 0);
    }

    #[test]
    fn continuation_without_a_line_is_an_error() {
        let err = read(" stray\n").unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn version_only_before_the_first_record() {
        let err = read("version: 2\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        let err = read("dn: cn=a\n\nversion: 1\n").unwrap_err();
        assert_eq!(err.line, Some(3));
    }
}
