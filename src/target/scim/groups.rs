//! SCIM Groups (RFC 7643 §4.2): listing them with their members, creating, renaming,
//! deleting, and changing members with PATCH.
//!
//! The same guarantees as for users hold (complete listings or an error, retries, the rate
//! limit, no token in errors), because every request goes through the service's `execute`.
//! What is particular to groups, and why:
//! - **Members change by PATCH operations, never by replacing `members`.** A replace would
//!   drop members added by hand, which roster must leave alone. Adds go in one `add`
//!   operation with a list of values; each removal is its own `remove` with a value filter
//!   (`members[value eq "ID"]`), the portable form (AWS, Entra, Okta, scim2-server).
//!   The one exception is a provider that refuses PATCH for members (501/405, or stated by
//!   `patch #false`): the group is read and its member list written back with PUT, only
//!   when the answer carries members and a version (If-Match), so nothing added meanwhile
//!   is lost. A PATCH refused for a rename only (some refuse `displayName`) does not stop
//!   member PATCHes.
//! - **Groups listed without members** (AWS): memberships are read per user with
//!   `members eq "<id>"` once that filter is shown to answer nothing for an unknown id.
//! - **At most `MAX_MEMBER_CHANGES` per request** (AWS's limit); the applier splits bigger
//!   changes, so that each request's outcome can be journaled for the actions in it.
//! - **Idempotent member changes.** Some servers refuse to remove a member that is not
//!   there (400 `noTarget`), and a PATCH is atomic: then the operations are sent one by
//!   one and a refused removal of a member already gone counts as done.
//! - **Lookups do not trust filters.** Not every server filters Groups (scim2-server
//!   ignores the filter there, others answer nothing), so a lookup checks each group that
//!   comes back and concludes absence only as `lookup.rs` allows.

use serde_json::{Value, json};

use super::lookup::{Attribute, Found, Lookup};
use super::{Call, PATCH_SCHEMA, Resource, ScimService, etag, get_ci, get_str, meta_version};
use crate::model::TargetGroup;
use crate::target::{GroupUpdate, TargetError};

use reqwest::Method;

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// AWS IAM Identity Center takes at most 100 member changes in one PATCH.
pub(super) const MAX_MEMBER_CHANGES: usize = 100;

impl ScimService {
    /// Pages through `/Groups?{query}`, handing each group to `each` until it returns
    /// `false`. Returns how many were handed over.
    fn page_groups(
        &self,
        query: &str,
        each: &mut dyn FnMut(TargetGroup) -> bool,
    ) -> Result<u64, TargetError> {
        self.page(
            Resource::Groups,
            query,
            &|call, resource| group_from_resource(resource).map_err(|m| call.invalid(m)),
            |group| &group.id,
            each,
        )
    }

    /// Every group with its members. Where group answers carry no members (stated by the
    /// config, or seen: groups listed and not one with a member), the members are read per
    /// user with `members eq "<user id>"` (AWS's documented way), once that filter is shown
    /// to be honoured; a provider stated to omit members whose filter cannot be trusted is
    /// an error, since planning on empty groups would add every membership every run.
    pub(super) fn list_all_groups(
        &self,
        sink: &mut dyn FnMut(TargetGroup),
    ) -> Result<u64, TargetError> {
        if self.learned.stated.members_in_listings == Some(true) {
            return self.page_groups("", &mut |group| {
                sink(group);
                true
            });
        }
        let mut groups = Vec::new();
        self.page_groups("", &mut |group| {
            groups.push(group);
            true
        })?;
        let stated = self.learned.members_omitted();
        let seen = !groups.is_empty() && groups.iter().all(|g| g.members.is_empty());
        if stated || seen {
            match self.members_filter_honoured()? {
                true => {
                    if !stated {
                        log::info!(
                            "{}: no group was listed with a member; reading memberships with \
                             `members eq` filters",
                            self.base
                        );
                    }
                    self.fill_members(&mut groups)?;
                }
                false if stated => {
                    return Err(TargetError::Unsupported(format!(
                        "{}: the target lists groups without their members, and its Groups \
                         filter `members eq` does not answer as it should, so memberships \
                         cannot be read; set `members-in-listings #true` in `compatibility` \
                         if its listings do carry members",
                        self.base
                    )));
                }
                false => {}
            }
        }
        let count = groups.len() as u64;
        for group in groups {
            sink(group);
        }
        Ok(count)
    }

    /// Whether `/Groups?filter=members eq "…"` is honoured: asked with an id no user has,
    /// it must answer no group (an empty list, or AWS's 404 for an unknown member).
    fn members_filter_honoured(&self) -> Result<bool, TargetError> {
        if self.provider_config()?.filter == Some(false) {
            return Ok(false);
        }
        let query = member_filter("roster-probe-no-such-member");
        let mut any = false;
        match self.page_groups(&query, &mut |_| {
            any = true;
            false
        }) {
            Ok(_) => Ok(!any),
            Err(TargetError::Http { status: 404, .. }) => Ok(true),
            Err(TargetError::Http {
                status: 400 | 405 | 501,
                ..
            }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Fills each group's members: one `members eq` query per user of the target.
    fn fill_members(&self, groups: &mut [TargetGroup]) -> Result<(), TargetError> {
        self.learned.omit_members();
        let mut users = Vec::new();
        self.page(
            Resource::Users,
            "",
            &|call, resource| {
                get_str(resource, "id")
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| call.invalid("a user without an id"))
            },
            |id: &String| id.as_str(),
            &mut |id| {
                users.push(id);
                true
            },
        )?;
        let index: std::collections::HashMap<String, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i))
            .collect();
        for user in users {
            let mut of_user = Vec::new();
            match self.page_groups(&member_filter(&user), &mut |group| {
                of_user.push(group.id);
                true
            }) {
                Ok(_) | Err(TargetError::Http { status: 404, .. }) => {}
                Err(err) => return Err(err),
            }
            for id in of_user {
                match index.get(&id) {
                    Some(&i) if !groups[i].members.contains(&user) => {
                        groups[i].members.push(user.clone());
                    }
                    Some(_) => {}
                    None => log::warn!(
                        "{}: group {id} answered for member {user} was not in the listing",
                        self.base
                    ),
                }
            }
        }
        Ok(())
    }

    pub(super) fn fetch_group(&self, id: &str) -> Result<Option<TargetGroup>, TargetError> {
        let call = Call::new(Method::GET, self.resource_url(Resource::Groups, id)?);
        match self.execute(&call) {
            Ok(answer) => {
                let resource = call.json(&answer)?;
                let mut group = group_from_resource(&resource).map_err(|m| call.invalid(m))?;
                group.version = group.version.or(etag(&answer));
                Ok(Some(group))
            }
            Err(TargetError::Http { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The group carrying `key`, else one named `name`. Two `eq` lookups (no `or`: AWS
    /// refuses it), each answer checked; when either cannot prove absence, the whole
    /// collection is listed (see `lookup.rs`).
    pub(super) fn lookup_group(
        &self,
        key: &str,
        name: &str,
    ) -> Result<Option<TargetGroup>, TargetError> {
        let by_key = self.filtered::<TargetGroup>(Attribute::ExternalId, key)?;
        if let Lookup::Found(group) = by_key {
            return Ok(Some(group));
        }
        let by_name = self.filtered::<TargetGroup>(Attribute::DisplayName, name)?;
        match (by_key, by_name) {
            (Lookup::Absent, Lookup::Found(group)) => Ok(Some(group)),
            (Lookup::Absent, Lookup::Absent) => Ok(None),
            _ => self.scan(&|group: &TargetGroup| {
                if group.has(Attribute::ExternalId, key) {
                    Some(0)
                } else if group.has(Attribute::DisplayName, name) {
                    Some(1)
                } else {
                    None
                }
            }),
        }
    }

    pub(super) fn post_group(&self, key: &str, name: &str) -> Result<TargetGroup, TargetError> {
        let body = json!({
            "schemas": [GROUP_SCHEMA],
            "externalId": key,
            "displayName": name,
        });
        let call = Call::new(Method::POST, self.collection_url(Resource::Groups)).body(&body);
        let answer = self.execute(&call)?;
        let resource = call.json(&answer)?;
        let mut group = group_from_resource(&resource).map_err(|m| call.invalid(m))?;
        group.version = group.version.or(etag(&answer));
        Ok(group)
    }

    pub(super) fn patch_group(
        &self,
        id: &str,
        version: Option<&str>,
        update: &GroupUpdate,
    ) -> Result<Option<String>, TargetError> {
        let mut ops = Vec::new();
        if let Some(external_id) = &update.external_id {
            ops.push(json!({"op": "replace", "path": "externalId", "value": external_id}));
        }
        if let Some(name) = &update.name {
            ops.push(json!({"op": "replace", "path": "displayName", "value": name}));
        }
        if ops.is_empty() {
            return Ok(version.map(str::to_string));
        }
        if self.learned.patch_refused() {
            return self.put_group(id, version, update);
        }
        let mut call = Call::new(Method::PATCH, self.resource_url(Resource::Groups, id)?)
            .body(&json!({ "schemas": [PATCH_SCHEMA], "Operations": ops }));
        call.if_match = version.map(str::to_string);
        match self.execute(&call) {
            Ok(answer) => call.version_after(&answer),
            Err(err) if super::is_patch_refused(&err) => {
                log::info!("{err}: the target refuses PATCH here; changes go by GET then PUT");
                self.learned.refuse_patch();
                self.put_group(id, version, update)
            }
            Err(err) => Err(err),
        }
    }

    /// The fallback for providers without PATCH: reads the group, and writes it back whole
    /// with the change, conditional on the version read (If-Match) when it has one. The
    /// read must show the version planned. A group whose answer carries no `members` is not
    /// written: a PUT would drop its members.
    fn put_group(
        &self,
        id: &str,
        version: Option<&str>,
        update: &GroupUpdate,
    ) -> Result<Option<String>, TargetError> {
        let url = self.resource_url(Resource::Groups, id)?;
        let read = Call::new(Method::GET, url.clone());
        let reply = self.execute(&read)?;
        let mut resource = read.json(&reply)?;
        let current = meta_version(&resource).or(etag(&reply));
        if let (Some(expected), Some(current)) = (version, &current)
            && expected != current
        {
            return Err(TargetError::Stale {
                method: "PUT".into(),
                url,
            });
        }
        if get_ci(&resource, "members").is_none() || self.learned.members_omitted() {
            return Err(TargetError::Unsupported(format!(
                "PUT {url}: the target takes no PATCH for groups and its group answers carry \
                 no members, so writing the group whole would drop them; change it by hand"
            )));
        }
        let Some(object) = resource.as_object_mut() else {
            return Err(read.invalid("a group that is not a JSON object"));
        };
        object.remove("meta");
        if let Some(external_id) = &update.external_id {
            object.insert("externalId".into(), Value::String(external_id.clone()));
        }
        if let Some(name) = &update.name {
            object.insert("displayName".into(), Value::String(name.clone()));
        }
        let mut call = Call::new(Method::PUT, url).body(&resource);
        call.if_match = current.or(version.map(str::to_string));
        let answer = self.execute(&call)?;
        call.version_after(&answer)
    }

    pub(super) fn remove_group(&self, id: &str, version: Option<&str>) -> Result<(), TargetError> {
        let mut call = Call::new(Method::DELETE, self.resource_url(Resource::Groups, id)?);
        call.if_match = version.map(str::to_string);
        match self.execute(&call) {
            Ok(_) | Err(TargetError::Http { status: 404, .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub(super) fn patch_members(
        &self,
        group_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), TargetError> {
        if add.len() + remove.len() > MAX_MEMBER_CHANGES {
            return Err(TargetError::Setup(format!(
                "{} member changes in one request; at most {MAX_MEMBER_CHANGES} are sent at once",
                add.len() + remove.len()
            )));
        }
        let url = self.resource_url(Resource::Groups, group_id)?;
        let send = |ops: &[Value]| {
            let call = Call::new(Method::PATCH, url.clone())
                .body(&json!({ "schemas": [PATCH_SCHEMA], "Operations": ops }));
            self.execute(&call).map(|_| ())
        };
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        if self.learned.stated.patch == Some(false) {
            return self.put_members(group_id, add, remove, None);
        }
        let value_paths = !self.learned.value_paths_refused();
        let ops = member_operations(add, remove, value_paths);
        let result = match send_idempotent(&send, &ops) {
            Err(err) if value_paths && !remove.is_empty() && is_path_refused(&err) => {
                // A PATCH is atomic: nothing of the refused request was applied. The same
                // changes again, removals as `members` with a value list.
                log::info!(
                    "{err}: the target refuses value paths; member removals are sent as \
                     `members` with a value list from now on"
                );
                self.learned.refuse_value_paths();
                send_idempotent(&send, &member_operations(add, remove, false))
            }
            other => other,
        };
        match result {
            // PATCH refused as a method (not only for some attributes: member PATCHes are
            // tried whatever a rename learned): GET, then PUT the member list.
            Err(err) if super::is_patch_refused(&err) => {
                log::info!("{err}: the target refuses PATCH for members; they go by GET then PUT");
                self.put_members(group_id, add, remove, Some(&err))
            }
            other => other,
        }
    }

    /// The fallback for providers without PATCH: reads the group and writes its member list
    /// back with the changes, conditional on the version read. Only with a version: without
    /// one, a member someone adds between the read and the write would be dropped, and
    /// roster never removes a member it did not add. Never when answers carry no members.
    fn put_members(
        &self,
        group_id: &str,
        add: &[String],
        remove: &[String],
        refused: Option<&TargetError>,
    ) -> Result<(), TargetError> {
        let url = self.resource_url(Resource::Groups, group_id)?;
        let why = refused.map_or_else(
            || "the config says the target takes no PATCH".to_string(),
            |err| format!("PATCH was refused ({err})"),
        );
        let read = Call::new(Method::GET, url.clone());
        let reply = self.execute(&read)?;
        let mut resource = read.json(&reply)?;
        let version = meta_version(&resource).or(etag(&reply));
        if get_ci(&resource, "members").is_none() || self.learned.members_omitted() {
            return Err(TargetError::Unsupported(format!(
                "{why}, and the target's group answers carry no members, so writing the \
                 group whole would drop them; change the members of {url} by hand"
            )));
        }
        let Some(version) = version else {
            return Err(TargetError::Unsupported(format!(
                "{why}, and the target keeps no versions, so a member list written back whole \
                 could drop a member added meanwhile; change the members of {url} by hand"
            )));
        };
        let Some(object) = resource.as_object_mut() else {
            return Err(read.invalid("a group that is not a JSON object"));
        };
        object.remove("meta");
        let mut members: Vec<Value> = object
            .get("members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        members.retain(|m| !get_str(m, "value").is_some_and(|v| remove.iter().any(|r| r == v)));
        for id in add {
            if !members
                .iter()
                .any(|m| get_str(m, "value") == Some(id.as_str()))
            {
                members.push(json!({ "value": id }));
            }
        }
        object.insert("members".into(), Value::Array(members));
        let mut call = Call::new(Method::PUT, url).body(&resource);
        call.if_match = Some(version);
        self.execute(&call).map(|_| ())
    }
}

/// Sends `ops` in one request; when a removal of a member already gone spoils the whole
/// (atomic) request, sends them one by one and lets each such removal count as done.
fn send_idempotent(
    send: &dyn Fn(&[Value]) -> Result<(), TargetError>,
    ops: &[Value],
) -> Result<(), TargetError> {
    match send(ops) {
        Err(err) if is_no_target(&err) && ops.len() > 1 => {
            for op in ops {
                match send(std::slice::from_ref(op)) {
                    Err(e) if is_no_target(&e) && op["op"] == "remove" => {}
                    other => other?,
                }
            }
            Ok(())
        }
        Err(err) if is_no_target(&err) && ops.first().is_some_and(|op| op["op"] == "remove") => {
            Ok(())
        }
        other => other,
    }
}

/// `filter=members eq "<id>"&`, the id a JSON string, URL-encoded.
fn member_filter(id: &str) -> String {
    let filter = format!("members eq {}", Value::String(id.to_string()));
    format!("filter={}&", super::encode_component(&filter))
}

/// The provider does not take `members[value eq "…"]`: 400 `invalidPath` (or
/// `invalidFilter`/`invalidSyntax`, as some word it), or 501.
fn is_path_refused(err: &TargetError) -> bool {
    match err {
        TargetError::Http {
            status: 400,
            code: Some(t),
            ..
        } => matches!(
            t.as_str(),
            "invalidPath" | "invalidFilter" | "invalidSyntax"
        ),
        TargetError::Http { status: 501, .. } => true,
        _ => false,
    }
}

fn is_no_target(err: &TargetError) -> bool {
    matches!(err, TargetError::Http { status: 400, code: Some(t), .. } if t == "noTarget")
}

/// One `add` with every new member, then one `remove` per member leaving: by value path
/// (`members[value eq "id"]`, the portable form), or for providers that refuse value paths
/// as `{"op":"remove","path":"members","value":[{"value":"id"}]}`.
fn member_operations(add: &[String], remove: &[String], value_paths: bool) -> Vec<Value> {
    let mut ops = Vec::new();
    if !add.is_empty() {
        let values: Vec<Value> = add.iter().map(|id| json!({ "value": id })).collect();
        ops.push(json!({ "op": "add", "path": "members", "value": values }));
    }
    for id in remove {
        if !value_paths {
            ops.push(json!({ "op": "remove", "path": "members", "value": [{ "value": id }] }));
            continue;
        }
        // The id is a JSON string inside the filter: quotes and backslashes escaped.
        let path = format!("members[value eq {}]", Value::String(id.clone()));
        ops.push(json!({ "op": "remove", "path": path }));
    }
    ops
}

/// A Group resource in roster's terms. The message says what is wrong with it.
pub(super) fn group_from_resource(resource: &Value) -> Result<TargetGroup, String> {
    let id = get_str(resource, "id")
        .filter(|s| !s.is_empty())
        .ok_or("a group without an id")?;
    let name =
        get_str(resource, "displayName").ok_or_else(|| format!("group {id} has no displayName"))?;
    let members = get_ci(resource, "members")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|m| get_str(m, "value"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(TargetGroup {
        id: id.to_string(),
        external_id: get_str(resource, "externalId")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        name: name.to_string(),
        members,
        version: meta_version(resource),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_changes_are_one_add_and_a_remove_each() {
        let ops = member_operations(
            &["u1".into(), "u2".into()],
            &["u3".into(), "we\"ird".into()],
            true,
        );
        assert_eq!(
            Value::Array(ops),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
                {"op": "remove", "path": "members[value eq \"u3\"]"},
                {"op": "remove", "path": "members[value eq \"we\\\"ird\"]"},
            ])
        );
        assert!(member_operations(&[], &[], true).is_empty());
        assert_eq!(
            Value::Array(member_operations(&[], &["u3".into()], false)),
            json!([{"op": "remove", "path": "members", "value": [{"value": "u3"}]}])
        );
    }

    #[test]
    fn a_resource_becomes_a_target_group() {
        let group = group_from_resource(&json!({
            "id": "g1", "externalId": "k", "displayName": "Sales",
            "members": [{"value": "u1"}, {"value": "u2", "type": "User"}],
            "meta": {"version": "W/\"4\""}
        }))
        .expect("valid");
        assert_eq!(group.members, ["u1", "u2"]);
        assert_eq!(group.external_id.as_deref(), Some("k"));
        assert_eq!(group.version.as_deref(), Some("W/\"4\""));
        let bare = group_from_resource(&json!({"id": "g2", "displayName": "X", "externalId": ""}))
            .expect("valid");
        assert!(bare.members.is_empty() && !bare.is_managed());
        assert!(group_from_resource(&json!({"displayName": "X"})).is_err());
    }
}
