//! What this SCIM service provider can do, read once per run and learned along the way.
//!
//! Real providers differ (see shared/CONNECTORS.md): some do not filter, some ignore the
//! filter they are sent, some refuse value paths in PATCH or PATCH itself. Two sources say
//! which:
//! - **`/ServiceProviderConfig`** (RFC 7643 §5), read at most once per run, and only when a
//!   decision needs it: a lookup, or a listing without a configured `page-size` (its page is
//!   the largest the provider accepts, `filter.maxResults`). A
//!   provider without one (404, 501) is treated as "unknown": every capability is then tried
//!   and checked.
//! - **What answers show.** Providers do not always tell the truth, so whether a filter is
//!   honoured is *proved* per resource and attribute (`FilterProof`): a filter on a value
//!   known to exist must answer that resource and nothing else. Only a proved filter's empty
//!   answer is taken as "absent"; anything else falls back to a full listing, because an
//!   absence concluded from an ignored filter is how duplicates are made.
//!
//! Refusals learned at run time (value paths, PATCH) are remembered for the rest of the run
//! so that each fallback costs one refused request, not one per action.
//!
//! A third source comes first: **what the config states** (`Stated`), the `provider` preset
//! (the vendor's documented limits) overridden by the `compatibility` block's switches. A
//! stated switch wins over `/ServiceProviderConfig`; it never turns off a check of what an
//! answer contains (a filter stated honoured is still proved before an empty answer counts).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::{Resource, get_ci};
use crate::config::{ScimCompatibility, ScimProvider};

/// What the config says about the provider before any request: the preset's documented
/// limits, each overridden by the `compatibility` switch of the same name. `None`: not said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Stated {
    pub filter: Option<bool>,
    pub patch: Option<bool>,
    pub value_paths: Option<bool>,
    pub members_in_listings: Option<bool>,
    pub max_page_size: Option<u32>,
    /// Whether `meta.lastModified gt "…"` filters are answered (incremental target reads).
    /// Only the preset says: no switch sets it, since a provider that cannot answers 400.
    pub last_modified_filter: Option<bool>,
}

impl Stated {
    pub fn new(provider: ScimProvider, switches: &ScimCompatibility) -> Stated {
        let preset = Stated::preset(provider);
        Stated {
            filter: switches.filter.or(preset.filter),
            patch: switches.patch.or(preset.patch),
            value_paths: switches.value_paths.or(preset.value_paths),
            members_in_listings: switches.members_in_listings.or(preset.members_in_listings),
            max_page_size: switches.max_page_size.or(preset.max_page_size),
            last_modified_filter: preset.last_modified_filter,
        }
    }

    /// The documented limits of each provider (README, "SCIM provider compatibility").
    fn preset(provider: ScimProvider) -> Stated {
        match provider {
            ScimProvider::Generic | ScimProvider::Google => Stated::default(),
            // IAM Identity Center: `eq` filters (joined by `and` only), PATCH, ListGroups and
            // GetGroup with an empty member list (members are queried with `members eq`),
            // at most 100 results a page.
            ScimProvider::Aws => Stated {
                filter: Some(true),
                patch: Some(true),
                members_in_listings: Some(false),
                max_page_size: Some(100),
                last_modified_filter: Some(false),
                ..Stated::default()
            },
            // Entra ID's SCIM API and the SCIM endpoints built to Entra's and Okta's guides:
            // `eq` filters on userName / externalId / displayName, PATCH; Okta pages by 100.
            ScimProvider::Entra => Stated {
                filter: Some(true),
                patch: Some(true),
                last_modified_filter: Some(false),
                ..Stated::default()
            },
            ScimProvider::Okta => Stated {
                filter: Some(true),
                max_page_size: Some(100),
                last_modified_filter: Some(false),
                ..Stated::default()
            },
        }
    }

    /// `/ServiceProviderConfig` with what the config states laid over it.
    pub fn over(&self, read: ProviderConfig) -> ProviderConfig {
        ProviderConfig {
            filter: self.filter.or(read.filter),
            patch: self.patch.or(read.patch),
            ..read
        }
    }
}

/// The `/ServiceProviderConfig` answers roster acts on. `None`: the provider did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ProviderConfig {
    pub filter: Option<bool>,
    pub filter_max_results: Option<u64>,
    pub patch: Option<bool>,
    pub bulk: Option<bool>,
    pub etag: Option<bool>,
}

impl ProviderConfig {
    /// Reads a ServiceProviderConfig document; anything missing or malformed stays unknown.
    pub fn parse(document: &Value) -> ProviderConfig {
        let supported = |name: &str| {
            get_ci(document, name)
                .and_then(|v| get_ci(v, "supported"))
                .and_then(as_bool)
        };
        ProviderConfig {
            filter: supported("filter"),
            filter_max_results: get_ci(document, "filter")
                .and_then(|f| get_ci(f, "maxResults"))
                .and_then(Value::as_u64)
                .filter(|&n| n > 0),
            patch: supported("patch"),
            bulk: supported("bulk"),
            etag: supported("etag"),
        }
    }
}

/// Some providers write booleans as strings.
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Whether a filter on one attribute of one resource type is honoured by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FilterProof {
    /// A filter on an existing value answered exactly the resources carrying it.
    Honoured,
    /// The provider refused the filter, ignored it, or answered nothing for a value that
    /// exists: its answers prove nothing.
    Untrusted,
}

/// What the service learned about the provider during this run.
#[derive(Debug, Default)]
pub(super) struct Learned {
    /// What the config states (preset and switches).
    pub stated: Stated,
    /// `None` until `/ServiceProviderConfig` was read.
    pub capabilities: Mutex<Option<ProviderConfig>>,
    /// Per (resource, attribute): proved once, kept for the run.
    pub filters: Mutex<HashMap<(Resource, &'static str), FilterProof>>,
    /// The provider refused `members[value eq "…"]` (400 invalidPath/invalidFilter, 501).
    pub value_paths_refused: AtomicBool,
    /// The provider answered PATCH with 501 or 405: changes go by GET then PUT.
    pub patch_refused: AtomicBool,
    /// Group answers were found (or stated) to carry no members: a group must never be
    /// written whole (PUT), and memberships are read with `members eq` filters.
    pub members_omitted: AtomicBool,
    /// Why users cannot be listed by `meta.lastModified` on this provider, once found out
    /// (a refused or unproved filter): later listings of the run go whole at once.
    pub changes_refused: Mutex<Option<String>>,
}

impl Learned {
    pub fn filter_proof(&self, resource: Resource, attribute: &'static str) -> Option<FilterProof> {
        self.filters
            .lock()
            .ok()
            .and_then(|map| map.get(&(resource, attribute)).copied())
    }

    pub fn prove_filter(&self, resource: Resource, attribute: &'static str, proof: FilterProof) {
        if let Ok(mut map) = self.filters.lock() {
            map.insert((resource, attribute), proof);
        }
    }

    pub fn known_config(&self) -> Option<ProviderConfig> {
        self.capabilities.lock().ok().and_then(|c| *c)
    }

    pub fn new(stated: Stated) -> Learned {
        Learned {
            stated,
            members_omitted: AtomicBool::new(stated.members_in_listings == Some(false)),
            ..Learned::default()
        }
    }

    pub fn omit_members(&self) {
        self.members_omitted.store(true, Ordering::Relaxed);
    }

    pub fn members_omitted(&self) -> bool {
        self.members_omitted.load(Ordering::Relaxed)
    }

    /// The `count` to ask for: the configured page size, capped by the largest page the
    /// provider is stated to accept and by `filter.maxResults` once it is known.
    pub fn page_size(&self, configured: u32) -> u32 {
        let from_spc = self
            .known_config()
            .and_then(|c| c.filter_max_results)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        [Some(configured), self.stated.max_page_size, from_spc]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(configured)
            .max(1)
    }

    pub fn refuse_value_paths(&self) {
        self.value_paths_refused.store(true, Ordering::Relaxed);
    }

    pub fn value_paths_refused(&self) -> bool {
        self.value_paths_refused.load(Ordering::Relaxed) || self.stated.value_paths == Some(false)
    }

    /// Remembers for the run that listing by `meta.lastModified` does not work, and why.
    pub fn refuse_changes(&self, why: &str) {
        if let Ok(mut slot) = self.changes_refused.lock() {
            *slot = Some(why.to_string());
        }
    }

    pub fn changes_refused(&self) -> Option<String> {
        self.changes_refused.lock().ok().and_then(|s| s.clone())
    }

    pub fn refuse_patch(&self) {
        self.patch_refused.store(true, Ordering::Relaxed);
    }

    pub fn patch_refused(&self) -> bool {
        self.patch_refused.load(Ordering::Relaxed)
            || self.stated.patch == Some(false)
            || self.known_config().and_then(|c| c.patch) == Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_provider_config_is_read_leniently() {
        let caps = ProviderConfig::parse(&json!({
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0},
            "filter": {"supported": "False", "maxResults": 100},
            "etag": {"supported": false},
        }));
        assert_eq!(
            caps,
            ProviderConfig {
                filter: Some(false),
                filter_max_results: Some(100),
                patch: Some(true),
                bulk: Some(false),
                etag: Some(false),
            }
        );
        assert_eq!(
            ProviderConfig::parse(&json!({"filter": 3})),
            ProviderConfig::default()
        );
    }

    #[test]
    fn switches_override_the_preset_and_the_preset_overrides_the_provider() {
        let aws = Stated::new(ScimProvider::Aws, &ScimCompatibility::default());
        assert_eq!(aws.members_in_listings, Some(false));
        assert_eq!(aws.max_page_size, Some(100));
        let switched = Stated::new(
            ScimProvider::Aws,
            &ScimCompatibility {
                members_in_listings: Some(true),
                patch: Some(false),
                ..ScimCompatibility::default()
            },
        );
        assert_eq!(switched.members_in_listings, Some(true));
        assert_eq!(switched.patch, Some(false));
        let read = ProviderConfig {
            filter: Some(false),
            patch: Some(true),
            filter_max_results: Some(50),
            ..ProviderConfig::default()
        };
        let over = switched.over(read);
        assert_eq!((over.filter, over.patch), (Some(true), Some(false)));
        let generic = Stated::new(ScimProvider::Generic, &ScimCompatibility::default());
        assert_eq!(generic, Stated::default());
        assert_eq!(generic.over(read), read);

        let learned = Learned::new(aws);
        assert!(learned.members_omitted());
        assert_eq!(learned.page_size(500), 100);
        assert_eq!(learned.page_size(20), 20);
        if let Ok(mut slot) = learned.capabilities.lock() {
            *slot = Some(read);
        }
        assert_eq!(
            learned.page_size(500),
            50,
            "filter.maxResults caps the page"
        );
    }
}
