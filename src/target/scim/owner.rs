//! The owner carrier on SCIM: which config's account this is, kept in the externalId.
//!
//! Two configs (two owners, each with its own state store) may write to one SCIM service.
//! Each must know, from the target alone, which accounts are its own, so that a lost store
//! never makes one take, update away or remove the other's. The owner therefore travels
//! with the key in the one attribute every SCIM provider keeps for the client, the
//! externalId (RFC 7643 §3.1: "provided by the client"): `roster:OWNER:KEY`. An extension
//! attribute (`urn:...:roster:User:owner`) was the alternative, but providers refuse or
//! silently drop schemas they do not know (AWS IAM Identity Center keeps only the core and
//! enterprise schemas), and enterprise fields such as `organization` are HR data a mapping
//! may write. `:` and `%` in the owner are percent-escaped, so the first `:` after the owner
//! ends it, and the key is kept exactly as it is (it may hold `:`).
//!
//! An externalId without the `roster:` prefix is an account written before owners were
//! recorded: its key is the whole value and its owner is `None` (see `store/ownership.rs`
//! for what roster then does with it).

const PREFIX: &str = "roster:";

/// The externalId that records `key` as `owner`'s.
pub(super) fn external_id(owner: &str, key: &str) -> String {
    let owner = owner.replace('%', "%25").replace(':', "%3A");
    format!("{PREFIX}{owner}:{key}")
}

/// The owner and the key an externalId holds: `(None, value)` for one without an owner.
pub(super) fn read(external_id: &str) -> (Option<String>, String) {
    if let Some(rest) = external_id.strip_prefix(PREFIX)
        && let Some((owner, key)) = rest.split_once(':')
        && !owner.is_empty()
        && !key.is_empty()
    {
        return (Some(unescape(owner)), key.to_string());
    }
    (None, external_id.to_string())
}

/// The owner as `external_id` wrote it, read in one pass (`%25` → `%`, `%3A` → `:`).
fn unescape(owner: &str) -> String {
    let mut out = String::with_capacity(owner.len());
    let mut rest = owner;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("%25") {
            out.push('%');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%3A") {
            out.push(':');
            rest = after;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The externalId an account read back holds, as it was written.
pub(super) fn written(user: &crate::model::TargetUser) -> Option<String> {
    let key = user.external_id.as_deref()?;
    Some(match &user.owner {
        Some(owner) => external_id(owner, key),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_and_the_key_come_back_as_written_and_a_bare_key_has_no_owner() {
        for (owner, key) in [
            ("employees", "k-1"),
            ("hr:sync 100%", "urn:uuid:1f3a:2"),
            ("a", "roster:x:y"),
            ("%3A", "k"),
            ("%:", "k"),
        ] {
            let written = external_id(owner, key);
            assert_eq!(read(&written), (Some(owner.to_string()), key.to_string()));
        }
        assert_eq!(
            external_id("hr:sync", "k"),
            "roster:hr%3Async:k",
            "the owner cannot end early"
        );
        for bare in [
            "k-1",
            "urn:uuid:1",
            "roster:",
            "roster:owner-only",
            "roster::k",
        ] {
            assert_eq!(read(bare), (None, bare.to_string()), "{bare}");
        }
    }
}
