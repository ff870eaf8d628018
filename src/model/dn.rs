//! The canonical form of a DN, the one DN comparison of the whole program.
//!
//! It is here, below the sources and the membership rules, because both need it: an LDAP
//! group names its members by DN (`member`, `uniqueMember`) or by username (`memberUid`),
//! and DNs are written in many equivalent ways (`uid=Alice, ou=People` and
//! `UID=alice,ou=people` name the same entry). Member DNs and user DNs are both put into
//! the canonical form of `canonical_dn` before they are compared, so the comparison is a
//! plain string equality.

/// The canonical form of a DN (RFC 4514), for comparing DNs: attribute types and values
/// lowercased, spaces around separators and values dropped, escapes decoded and re-written
/// one way, the values of a multi-valued RDN sorted. Not a validator: text that is not a DN
/// still gets a stable form. Attribute types given as OIDs are not mapped to their names.
pub fn canonical_dn(dn: &str) -> String {
    split_unescaped(dn, ',')
        .into_iter()
        .filter(|rdn| !rdn.trim().is_empty())
        .map(|rdn| {
            let mut avas: Vec<String> = split_unescaped(rdn, '+')
                .into_iter()
                .map(|ava| match split_unescaped(ava, '=').split_first() {
                    Some((kind, value)) if !value.is_empty() => {
                        let value = value.join("=");
                        format!(
                            "{}={}",
                            kind.trim().to_lowercase(),
                            escape(&unescape(value.trim()).to_lowercase())
                        )
                    }
                    _ => escape(&unescape(ava.trim()).to_lowercase()),
                })
                .collect();
            avas.sort();
            avas.join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `s` split at every `sep` that is not escaped with a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == sep => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Decodes `\,` style and `\2C` style escapes. Hex escapes are bytes of UTF-8; bytes that
/// do not form UTF-8 are kept as the replacement character (stable, if lossy).
fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(bytes[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes the characters that would change how the canonical form splits.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '+' | '=' | '\\' | '"' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `uniqueMember` value is a DN optionally followed by `#'0101'B` (a bit-string UID that
/// tells apart entries re-created under the same DN); the DN is what names the member.
pub fn strip_unique_id(value: &str) -> &str {
    let trimmed = value.trim_end();
    if trimmed.ends_with("'B") {
        // The last unescaped '#' starts the UID.
        let parts = split_unescaped(trimmed, '#');
        if parts.len() > 1 {
            let uid_len = parts.last().map_or(0, |p| p.len() + 1);
            return &trimmed[..trimmed.len() - uid_len];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_dns_have_one_canonical_form() {
        let want = "uid=alice,ou=people,dc=example,dc=com";
        for dn in [
            "uid=alice,ou=People,dc=example,dc=com",
            "UID=Alice, OU=People, DC=example, DC=com",
            "uid = alice ,ou=people,dc=example,dc=com",
            "uid=\\61lice,ou=people,dc=example,dc=com",
        ] {
            assert_eq!(canonical_dn(dn), want, "{dn}");
        }
        assert_eq!(
            canonical_dn("cn=Smith\\, John,ou=People"),
            canonical_dn("CN=smith\\2c john, ou=people")
        );
        assert_ne!(
            canonical_dn("cn=Smith\\, John,ou=People"),
            canonical_dn("cn=Smith,cn=John,ou=People")
        );
        assert_eq!(
            canonical_dn("cn=a+uid=b,dc=x"),
            canonical_dn("UID=b+CN=a,dc=x"),
            "multi-valued RDNs in any order"
        );
        assert_eq!(canonical_dn("cn=j\\c3\\bcrgen,dc=x"), "cn=jürgen,dc=x");
    }

    #[test]
    fn unique_member_uids_are_dropped() {
        assert_eq!(
            strip_unique_id("uid=a,dc=x#'0101'B"),
            "uid=a,dc=x",
            "with a UID"
        );
        assert_eq!(strip_unique_id("uid=a,dc=x"), "uid=a,dc=x");
        assert_eq!(strip_unique_id("cn=a\\#b,dc=x"), "cn=a\\#b,dc=x");
    }
}
