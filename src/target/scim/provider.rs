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

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::{Resource, get_ci};

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
    /// `None` until `/ServiceProviderConfig` was read.
    pub capabilities: Mutex<Option<ProviderConfig>>,
    /// Per (resource, attribute): proved once, kept for the run.
    pub filters: Mutex<HashMap<(Resource, &'static str), FilterProof>>,
    /// The provider refused `members[value eq "…"]` (400 invalidPath/invalidFilter, 501).
    pub value_paths_refused: AtomicBool,
    /// The provider answered PATCH with 501 or 405: changes go by GET then PUT.
    pub patch_refused: AtomicBool,
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

    pub fn refuse_value_paths(&self) {
        self.value_paths_refused.store(true, Ordering::Relaxed);
    }

    pub fn value_paths_refused(&self) -> bool {
        self.value_paths_refused.load(Ordering::Relaxed)
    }

    pub fn refuse_patch(&self) {
        self.patch_refused.store(true, Ordering::Relaxed);
    }

    pub fn patch_refused(&self) -> bool {
        self.patch_refused.load(Ordering::Relaxed)
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
}
