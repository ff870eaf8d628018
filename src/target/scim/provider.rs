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
//!   `bulk.supported`, `bulk.maxOperations` and `bulk.maxPayloadSize` decide whether the
//!   creates of an initial load go by `/Bulk` (`bulk.rs`), and in requests of what size.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// Whether `/Bulk` may be used (for the creates of an initial load).
    pub bulk: Option<bool>,
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
            bulk: switches.bulk.or(preset.bulk),
            last_modified_filter: preset.last_modified_filter,
        }
    }

    /// The documented limits of each provider (README, "SCIM provider compatibility").
    fn preset(provider: ScimProvider) -> Stated {
        match provider {
            ScimProvider::Generic | ScimProvider::Google => Stated::default(),
            // IAM Identity Center: `eq` filters (joined by `and` only), PATCH, ListGroups and
            // GetGroup with an empty member list (members are queried with `members eq`),
            // at most 100 results a page, no Bulk.
            ScimProvider::Aws => Stated {
                filter: Some(true),
                patch: Some(true),
                members_in_listings: Some(false),
                max_page_size: Some(100),
                bulk: Some(false),
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
            bulk: self.bulk.or(read.bulk),
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
    /// `bulk.maxOperations`: the most operations one Bulk request may carry.
    pub bulk_max_operations: Option<u64>,
    /// `bulk.maxPayloadSize`: the largest Bulk request body, in bytes.
    pub bulk_max_payload: Option<u64>,
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
        let bulk_limit = |name: &str| {
            get_ci(document, "bulk")
                .and_then(|b| get_ci(b, name))
                .and_then(Value::as_u64)
                .filter(|&n| n > 0)
        };
        ProviderConfig {
            filter: supported("filter"),
            filter_max_results: get_ci(document, "filter")
                .and_then(|f| get_ci(f, "maxResults"))
                .and_then(Value::as_u64)
                .filter(|&n| n > 0),
            patch: supported("patch"),
            bulk: supported("bulk"),
            bulk_max_operations: bulk_limit("maxOperations"),
            bulk_max_payload: bulk_limit("maxPayloadSize"),
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
    /// The provider refused a Bulk request as a request it does not serve (404, 405, 501):
    /// creates go one by one for the rest of the run.
    pub bulk_refused: AtomicBool,
    /// The largest Bulk body known to be too large (a 413 answered it): later requests stay
    /// below it. 0: none yet.
    pub bulk_too_large: AtomicU64,
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

    pub fn refuse_bulk(&self) {
        self.bulk_refused.store(true, Ordering::Relaxed);
    }

    pub fn bulk_refused(&self) -> bool {
        self.bulk_refused.load(Ordering::Relaxed)
    }

    /// A Bulk body of `bytes` was answered 413.
    pub fn bulk_was_too_large(&self, bytes: u64) {
        self.bulk_too_large
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |known| {
                (known == 0 || bytes < known).then_some(bytes)
            })
            .ok();
    }

    /// The largest Bulk body to send: under `limit` (the provider's `maxPayloadSize`) and
    /// under any body a 413 answered this run.
    pub fn bulk_payload_limit(&self, limit: u64) -> u64 {
        match self.bulk_too_large.load(Ordering::Relaxed) {
            0 => limit,
            refused => limit.min(refused.saturating_sub(1)),
        }
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
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 1048576},
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
                bulk_max_operations: None,
                bulk_max_payload: Some(1_048_576),
                etag: Some(false),
            }
        );
        assert_eq!(
            ProviderConfig::parse(&json!({"filter": 3})),
            ProviderConfig::default()
        );
    }

    #[test]
    fn a_bulk_body_answered_413_caps_the_later_ones() {
        let learned = Learned::default();
        assert_eq!(learned.bulk_payload_limit(1000), 1000);
        learned.bulk_was_too_large(800);
        assert_eq!(learned.bulk_payload_limit(1000), 799);
        learned.bulk_was_too_large(900);
        assert_eq!(
            learned.bulk_payload_limit(1000),
            799,
            "the smallest refusal counts"
        );
        learned.bulk_was_too_large(400);
        assert_eq!(learned.bulk_payload_limit(300), 300);
        assert_eq!(learned.bulk_payload_limit(1000), 399);
    }

    #[test]
    fn switches_override_the_preset_and_the_preset_overrides_the_provider() {
        let aws = Stated::new(ScimProvider::Aws, &ScimCompatibility::default());
        assert_eq!(aws.members_in_listings, Some(false));
        assert_eq!(aws.max_page_size, Some(100));
        assert_eq!(aws.bulk, Some(false), "AWS has no Bulk");
        let bulk_read = ProviderConfig {
            bulk: Some(true),
            ..ProviderConfig::default()
        };
        assert_eq!(aws.over(bulk_read).bulk, Some(false));
        let no_bulk = Stated::new(
            ScimProvider::Generic,
            &ScimCompatibility {
                bulk: Some(false),
                ..ScimCompatibility::default()
            },
        );
        assert_eq!(no_bulk.over(bulk_read).bulk, Some(false));
        assert_eq!(Stated::default().over(bulk_read).bulk, Some(true));
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
