//! LDIF (RFC 2849) for the file target. `content "all"` is a content file: one entry per
//! account, `dn: uid=USERNAME,BASE-DN`, an attribute per column that has a value
//! (phones as several values, `active: TRUE|FALSE` as LDAP booleans). `content "changes"`
//! is a change file: `changetype: add`, `modify` (each column replaced; a rename is a
//! `modrdn` first), `delete`. A value that is not a SAFE-STRING (non-ASCII, a leading space,
//! colon or `<`, a trailing space, a line end) is written base64-encoded with `::`.

use base64::Engine;

use super::{Change, ChangeKind, FIXED_COLUMNS};
use crate::model::TargetUser;

pub(super) struct Ldif<'a> {
    pub base_dn: &'a str,
    pub fields: &'a [String],
}

impl Ldif<'_> {
    /// A content file with every row.
    pub(super) fn entries<'r>(&self, rows: impl Iterator<Item = &'r TargetUser>) -> Vec<u8> {
        let mut out = String::from("version: 1\n");
        for row in rows {
            out.push('\n');
            line(&mut out, "dn", &self.dn(&row.username));
            for (attr, values) in self.attributes(row) {
                for value in values {
                    line(&mut out, &attr, &value);
                }
            }
        }
        out.into_bytes()
    }

    /// A change file with one record per change (two for a rename).
    pub(super) fn changes(&self, changes: &[Change]) -> Vec<u8> {
        let mut out = String::from("version: 1\n");
        for change in changes {
            out.push('\n');
            let dn = self.dn(&change.row.username);
            match change.kind {
                ChangeKind::Add => {
                    line(&mut out, "dn", &dn);
                    out.push_str("changetype: add\n");
                    for (attr, values) in self.attributes(&change.row) {
                        for value in values {
                            line(&mut out, &attr, &value);
                        }
                    }
                }
                ChangeKind::Update => {
                    if let Some(old) = &change.renamed_from {
                        line(&mut out, "dn", &self.dn(old));
                        out.push_str("changetype: modrdn\n");
                        line(
                            &mut out,
                            "newrdn",
                            &format!("uid={}", rdn_value(&change.row.username)),
                        );
                        out.push_str("deleteoldrdn: 1\n\n");
                    }
                    line(&mut out, "dn", &dn);
                    out.push_str("changetype: modify\n");
                    for (attr, values) in self.attributes_all(&change.row) {
                        line(&mut out, "replace", &attr);
                        for value in values {
                            line(&mut out, &attr, &value);
                        }
                        out.push_str("-\n");
                    }
                }
                ChangeKind::Remove => {
                    line(&mut out, "dn", &dn);
                    out.push_str("changetype: modify\nreplace: active\nactive: FALSE\n-\n");
                }
                ChangeKind::Delete => {
                    line(&mut out, "dn", &dn);
                    out.push_str("changetype: delete\n");
                }
            }
        }
        out.into_bytes()
    }

    fn dn(&self, username: &str) -> String {
        format!("uid={},{}", rdn_value(username), self.base_dn)
    }

    /// Every column with its values (none where the row has no value), in column order.
    fn attributes_all(&self, row: &TargetUser) -> Vec<(String, Vec<String>)> {
        let one = |v: Option<&String>| v.filter(|v| !v.is_empty()).cloned().into_iter().collect();
        let mut attrs: Vec<(String, Vec<String>)> = vec![
            (FIXED_COLUMNS[0].into(), one(row.external_id.as_ref())),
            (FIXED_COLUMNS[1].into(), vec![row.username.clone()]),
            (FIXED_COLUMNS[2].into(), one(row.name.as_ref())),
            (FIXED_COLUMNS[3].into(), one(row.email.as_ref())),
            (FIXED_COLUMNS[4].into(), row.phones.clone()),
        ];
        attrs.extend(
            self.fields
                .iter()
                .map(|f| (f.clone(), one(row.fields.get(f)))),
        );
        let active = if row.active { "TRUE" } else { "FALSE" };
        attrs.push((FIXED_COLUMNS[5].into(), vec![active.into()]));
        attrs
    }

    /// The columns that have a value.
    fn attributes(&self, row: &TargetUser) -> Vec<(String, Vec<String>)> {
        self.attributes_all(row)
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
}

/// `attr: value`, or `attr:: base64` where the value is not a SAFE-STRING.
fn line(out: &mut String, attr: &str, value: &str) {
    if is_safe(value) {
        out.push_str(&format!("{attr}: {value}\n"));
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        out.push_str(&format!("{attr}:: {encoded}\n"));
    }
}

/// RFC 2849 SAFE-STRING, and no trailing space (which readers may strip).
fn is_safe(value: &str) -> bool {
    let bytes = value.as_bytes();
    let Some(first) = bytes.first() else {
        return true;
    };
    let safe_char = |b: &u8| *b < 0x80 && !matches!(*b, 0 | b'\n' | b'\r');
    !matches!(*first, b' ' | b':' | b'<') && bytes.iter().all(safe_char) && !value.ends_with(' ')
}

/// An RDN value escaped as RFC 4514 says: `,+"\<>;=` and NUL always, `#` and a space at
/// the start, a space at the end.
fn rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_are_not_safe_strings_are_base64() {
        let mut out = String::new();
        line(&mut out, "name", "Zoë");
        line(&mut out, "name", " lead");
        line(&mut out, "name", ":colon");
        line(&mut out, "name", "<angle");
        line(&mut out, "name", "trail ");
        line(&mut out, "name", "plain: fine");
        assert_eq!(
            out,
            "name:: Wm/Dqw==\nname:: IGxlYWQ=\nname:: OmNvbG9u\nname:: PGFuZ2xl\nname:: dHJhaWwg\nname: plain: fine\n"
        );
    }

    #[test]
    fn rdn_values_are_escaped() {
        assert_eq!(rdn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(rdn_value("#x "), "\\#x\\ ");
        assert_eq!(rdn_value("plain.name"), "plain.name");
    }
}
