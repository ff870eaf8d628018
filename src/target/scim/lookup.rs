//! Finding one user or group by an attribute, without ever concluding "absent" from an
//! answer the provider may not mean.
//!
//! Every path that can create (an add, the resume of a killed apply, the adoption after a
//! 409, the staleness check) asks here whether the object exists; a wrong "no" makes a
//! duplicate. So:
//! - **One `eq` per request**, never `or` (AWS IAM Identity Center accepts only `eq` joined
//!   by `and`).
//! - **The answer is checked, not the filter trusted**: every resource that comes back is
//!   compared with the value; a provider that ignores the filter is paged through whole.
//! - **An empty answer counts as absence only from a proved filter** (see
//!   `provider::FilterProof`): one that answered a value known to exist. Otherwise, and when
//!   `/ServiceProviderConfig` says filtering is unsupported, or the filter is refused, the
//!   whole collection is listed and checked.

use reqwest::Method;
use serde_json::Value;

use super::provider::FilterProof;
use super::{Call, Pages, Resource, ScimService, Trees, encode_component, groups};
use crate::model::{TargetGroup, TargetUser};
use crate::target::TargetError;

/// The attributes lookups filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attribute {
    UserName,
    ExternalId,
    DisplayName,
}

impl Attribute {
    fn name(self) -> &'static str {
        match self {
            Attribute::UserName => "userName",
            Attribute::ExternalId => "externalId",
            Attribute::DisplayName => "displayName",
        }
    }

    /// SCIM's comparison for the attribute: `externalId` is case-exact, `userName` and a
    /// group's `displayName` are not (RFC 7643 §4.1.1, §4.2, §3.1).
    fn matches(self, have: &str, want: &str) -> bool {
        match self {
            Attribute::ExternalId => have == want,
            Attribute::UserName | Attribute::DisplayName => {
                have.to_lowercase() == want.to_lowercase()
            }
        }
    }
}

/// A user or a group, as lookups see it.
pub(super) trait Found: Sized {
    const RESOURCE: Resource;
    fn parse(service: &ScimService, call: &Call, resource: &Value) -> Result<Self, TargetError>;
    fn id(&self) -> &str;
    fn attribute(&self, attribute: Attribute) -> Option<&str>;

    fn has(&self, attribute: Attribute, value: &str) -> bool {
        self.attribute(attribute)
            .is_some_and(|have| attribute.matches(have, value))
    }
}

impl Found for TargetUser {
    const RESOURCE: Resource = Resource::Users;
    fn parse(service: &ScimService, call: &Call, resource: &Value) -> Result<Self, TargetError> {
        service.user_from(call, resource, None)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn attribute(&self, attribute: Attribute) -> Option<&str> {
        match attribute {
            Attribute::UserName => Some(&self.username),
            Attribute::ExternalId => self.external_id.as_deref(),
            Attribute::DisplayName => self.name.as_deref(),
        }
    }
}

impl Found for TargetGroup {
    const RESOURCE: Resource = Resource::Groups;
    fn parse(_: &ScimService, call: &Call, resource: &Value) -> Result<Self, TargetError> {
        groups::group_from_resource(resource).map_err(|m| call.invalid(m))
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn attribute(&self, attribute: Attribute) -> Option<&str> {
        match attribute {
            Attribute::UserName => None,
            Attribute::ExternalId => self.external_id.as_deref(),
            Attribute::DisplayName => Some(&self.name),
        }
    }
}

/// What one filtered lookup established.
#[derive(Debug)]
pub(super) enum Lookup<T> {
    Found(T),
    /// Proved absent: by a proved filter, or by a complete listing.
    Absent,
    /// The answer proves nothing: list the collection to know.
    Unproven,
}

impl ScimService {
    /// Pages through `/{resource}?{query}`, parsing each resource.
    fn page_found<T: Found>(
        &self,
        query: &str,
        each: &mut dyn FnMut(T) -> bool,
    ) -> Result<u64, TargetError> {
        self.page(
            T::RESOURCE,
            query,
            &|call, resource| T::parse(self, call, resource),
            |item: &T| item.id(),
            each,
        )
    }

    /// `filter=<attribute> eq "<value>"&`, the value a JSON string, URL-encoded.
    fn filter_query(attribute: Attribute, value: &str) -> String {
        let filter = format!(
            "{} eq {}",
            attribute.name(),
            Value::String(value.to_string())
        );
        format!("filter={}&", encode_component(&filter))
    }

    /// Looks `value` up with one `eq` filter. See the module doc for when the answer counts.
    pub(super) fn filtered<T: Found>(
        &self,
        attribute: Attribute,
        value: &str,
    ) -> Result<Lookup<T>, TargetError> {
        if self.provider_config()?.filter == Some(false) {
            return Ok(Lookup::Unproven);
        }
        let mut found = None;
        let mut others = 0u64;
        let answer = self.page_found(&Self::filter_query(attribute, value), &mut |item: T| {
            if item.has(attribute, value) {
                found = Some(item);
                return false;
            }
            others += 1;
            true
        });
        match answer {
            Ok(_) => {}
            Err(err) if filter_refused(&err) => {
                log::info!(
                    "{}: the target refused a filter on {} ({err}); listing instead",
                    self.base,
                    attribute.name()
                );
                self.learned
                    .prove_filter(T::RESOURCE, attribute.name(), FilterProof::Untrusted);
                return Ok(Lookup::Unproven);
            }
            Err(err) => return Err(err),
        }
        if let Some(item) = found {
            return Ok(Lookup::Found(item));
        }
        if others > 0 {
            // The filter was ignored: what came back was the whole collection, paged
            // through and checked, so the absence is proved, by a listing.
            self.learned
                .prove_filter(T::RESOURCE, attribute.name(), FilterProof::Untrusted);
            return Ok(Lookup::Absent);
        }
        Ok(match self.filter_proof::<T>(attribute)? {
            Some(FilterProof::Honoured) => Lookup::Absent,
            Some(FilterProof::Untrusted) | None => Lookup::Unproven,
        })
    }

    /// Whether a filter on `attribute` is honoured: asked once per run, with a value that
    /// exists (the first resource listed that carries the attribute). `None` when nothing
    /// to prove it with exists yet.
    fn filter_proof<T: Found>(
        &self,
        attribute: Attribute,
    ) -> Result<Option<FilterProof>, TargetError> {
        if let Some(proof) = self.learned.filter_proof(T::RESOURCE, attribute.name()) {
            return Ok(Some(proof));
        }
        let mut sample: Option<(String, String)> = None;
        self.page_found("", &mut |item: T| match item.attribute(attribute) {
            Some(value) if !value.is_empty() => {
                sample = Some((item.id().to_string(), value.to_string()));
                false
            }
            _ => true,
        })?;
        let Some((id, value)) = sample else {
            return Ok(None);
        };
        let call = Call::new(
            Method::GET,
            format!(
                "{}?{}",
                self.collection_url(T::RESOURCE),
                Self::filter_query(attribute, &value)
            ),
        );
        let proof = match self.execute(&call) {
            Ok(reply) => {
                let page = Trees.read(&call, &reply)?;
                let items = page
                    .resources
                    .iter()
                    .map(|r| T::parse(self, &call, r))
                    .collect::<Result<Vec<T>, _>>()?;
                let honoured = items.iter().any(|i| i.id() == id)
                    && items.iter().all(|i| i.has(attribute, &value));
                if honoured {
                    FilterProof::Honoured
                } else {
                    FilterProof::Untrusted
                }
            }
            Err(err) if filter_refused(&err) => FilterProof::Untrusted,
            Err(err) => return Err(err),
        };
        if proof == FilterProof::Untrusted {
            log::info!(
                "{}: the target's {} filter on {} does not answer what exists; lookups list \
                 the collection instead",
                self.base,
                T::RESOURCE.plural(),
                attribute.name()
            );
        }
        self.learned
            .prove_filter(T::RESOURCE, attribute.name(), proof);
        Ok(Some(proof))
    }

    /// The first resource for which `pick` holds, by listing the whole collection; `pick`
    /// ranks: the lowest rank found wins, rank 0 ends the listing.
    pub(super) fn scan<T: Found>(
        &self,
        rank: &dyn Fn(&T) -> Option<u8>,
    ) -> Result<Option<T>, TargetError> {
        let mut best: Option<(u8, T)> = None;
        self.page_found("", &mut |item: T| {
            if let Some(r) = rank(&item)
                && best.as_ref().is_none_or(|(b, _)| r < *b)
            {
                best = Some((r, item));
                return r != 0;
            }
            true
        })?;
        Ok(best.map(|(_, item)| item))
    }
}

/// A filter the provider will not take: 400 (invalidFilter, or a generic refusal), 405, 501.
pub(super) fn filter_refused(err: &TargetError) -> bool {
    matches!(
        err,
        TargetError::Http {
            status: 400 | 405 | 501,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_compare_as_scim_defines_them() {
        assert!(Attribute::UserName.matches("Alice", "alice"));
        assert!(Attribute::DisplayName.matches("SALES", "Sales"));
        assert!(!Attribute::ExternalId.matches("K1", "k1"));
        assert_eq!(
            ScimService::filter_query(Attribute::ExternalId, "a\"b"),
            "filter=externalId%20eq%20%22a%5C%22b%22&"
        );
    }
}
