//! Listing only the users changed since a time: `filter=meta.lastModified gt "…"`.
//!
//! An incremental run lays the accounts changed since its base run's read over that run's
//! target snapshot (`Store`'s `patch_target_from`). That is only right if the answer holds
//! every account changed since, so the listing is taken at its word only when:
//! - the provider may filter on it at all: not stated unable by its preset (`provider.rs`),
//!   not `filter.supported` false, not refused earlier in the run;
//! - it answers the filter (400 `invalidFilter` or another refusal: the users are listed
//!   whole, and the refusal is remembered for the run);
//! - every account it answers carries a `meta.lastModified` after `since`: an account
//!   without one, or an older one, shows the filter was ignored or misread, and an answer
//!   that cannot be checked proves nothing (RFC 7643 §3.1 makes `meta` optional).
//!
//! Deleted accounts are invisible to such a filter, so the total the target holds is asked
//! first (one unfiltered page of one) for the caller to compare with the patched snapshot:
//! asked before the filtered listing, an account created in between is in the listing and
//! not in the total, which makes the counts differ (a whole listing), never hides one.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::Value;

use super::lookup::filter_refused;
use super::{Call, Pages, Resource, ScimService, Trees, encode_component, get_ci, get_str};
use crate::model::TargetUser;
use crate::target::{ChangedUsers, TargetError};

impl ScimService {
    /// `Target::list_users_changed` for SCIM, by the rules in the module doc.
    pub(super) fn users_changed(
        &self,
        since: DateTime<Utc>,
        sink: &mut dyn FnMut(TargetUser),
    ) -> Result<ChangedUsers, TargetError> {
        if let Some(why) = self.changes_unsupported()? {
            return Ok(ChangedUsers::Cannot(why));
        }
        let total = self.total_users()?;
        // Whole seconds, as every provider parses them; earlier, never later, than asked.
        let since = DateTime::from_timestamp(since.timestamp(), 0).unwrap_or(since);
        let since_text = since.to_rfc3339_opts(SecondsFormat::Secs, true);
        let filter = format!("meta.lastModified gt {}", Value::String(since_text.clone()));
        let query = format!("filter={}&", encode_component(&filter));
        // The first account whose lastModified does not prove the filter, and why.
        let mut unproved: Option<String> = None;
        let listed = self.page(
            Resource::Users,
            &query,
            &|call, resource| {
                let user = self.user_from(call, resource, None)?;
                let proof = modified_after(resource, since);
                Ok((user, proof))
            },
            |(user, _)| &user.id,
            &mut |(user, proof)| match proof {
                Ok(()) => {
                    sink(user);
                    true
                }
                Err(why) => {
                    unproved = Some(format!("account {} {why}", user.id));
                    false
                }
            },
        );
        let cannot = |why: String| {
            let why = format!("the provider's answer to {filter:?} cannot be trusted: {why}");
            self.learned.refuse_changes(&why);
            Ok(ChangedUsers::Cannot(why))
        };
        match listed {
            Err(err) if filter_refused(&err) => {
                let why = format!("the provider refused the filter {filter:?} ({err})");
                self.learned.refuse_changes(&why);
                Ok(ChangedUsers::Cannot(why))
            }
            Err(err) => Err(err),
            Ok(_) if unproved.is_some() => cannot(unproved.unwrap_or_default()),
            Ok(changed) => Ok(ChangedUsers::Listed { changed, total }),
        }
    }

    /// Why this provider cannot be listed by `meta.lastModified`, when that is known before
    /// asking: its preset says so, its `/ServiceProviderConfig` says it does not filter, or
    /// an earlier listing of the run found out.
    fn changes_unsupported(&self) -> Result<Option<String>, TargetError> {
        if let Some(why) = self.learned.changes_refused() {
            return Ok(Some(why));
        }
        if self.learned.stated.last_modified_filter == Some(false) {
            return Ok(Some(
                "the provider preset says it does not filter on meta.lastModified".into(),
            ));
        }
        if self.provider_config()?.filter == Some(false) {
            return Ok(Some(
                "the provider does not filter (filter.supported is false in its /ServiceProviderConfig)"
                    .into(),
            ));
        }
        Ok(None)
    }

    /// How many users the target holds: `totalResults` of an unfiltered page of one.
    fn total_users(&self) -> Result<u64, TargetError> {
        let call = Call::new(
            Method::GET,
            format!(
                "{}?startIndex=1&count=1",
                self.collection_url(Resource::Users)
            ),
        );
        Ok(Trees.read(&call, &self.execute(&call)?)?.total)
    }
}

/// Whether a resource's `meta.lastModified` is after `since`; why not, in words.
fn modified_after(resource: &Value, since: DateTime<Utc>) -> Result<(), String> {
    let Some(text) = get_ci(resource, "meta").and_then(|meta| get_str(meta, "lastModified")) else {
        return Err("carries no meta.lastModified".into());
    };
    match DateTime::parse_from_rfc3339(text) {
        Ok(at) if at.with_timezone(&Utc) > since => Ok(()),
        Ok(_) => Err(format!(
            "was last modified at {}, not after {}: the filter was not applied",
            crate::text::escape_controls(text),
            since.to_rfc3339_opts(SecondsFormat::Secs, true)
        )),
        Err(_) => Err(format!(
            "has a meta.lastModified that is not an RFC 3339 time ({})",
            crate::text::escape_controls(text)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn only_a_later_last_modified_proves_the_filter() {
        let since = at("2024-05-01T12:00:00Z");
        let with = |modified: Value| json!({"id": "1", "meta": {"lastModified": modified}});
        assert_eq!(
            modified_after(&with(json!("2024-05-01T12:00:00.5+00:00")), since),
            Ok(())
        );
        assert_eq!(
            modified_after(&with(json!("2024-05-01T14:00:01+02:00")), since),
            Ok(()),
            "offsets are compared as instants"
        );
        let older = modified_after(&with(json!("2024-05-01T12:00:00Z")), since);
        assert!(
            older
                .as_ref()
                .is_err_and(|e| e.contains("the filter was not applied")),
            "{older:?}"
        );
        let bad = modified_after(&with(json!("yesterday")), since);
        assert!(
            bad.as_ref().is_err_and(|e| e.contains("not an RFC 3339")),
            "{bad:?}"
        );
        assert_eq!(
            modified_after(&json!({"id": "1", "meta": {}}), since),
            Err("carries no meta.lastModified".into())
        );
        assert_eq!(
            modified_after(&json!({"id": "1"}), since),
            Err("carries no meta.lastModified".into())
        );
    }
}
