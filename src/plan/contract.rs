//! The plan as the contract writes it down: the plan file, `--format json` and the store's
//! plan rows (DESIGN.md, "Plan JSON").
//!
//! These serde types are exactly the JSON roster has always written (same field names,
//! same order, same omissions), kept apart from the model in `plan/mod.rs` and converted
//! by hand both ways. Every name the contract gives a thing is spelled here and nowhere
//! else: field names (`externalId`, `displayName`, ...), statuses, action and object
//! kinds, and the membership key `<group key>/<user key>`. Reading converts strictly: an
//! unknown field, status, reason or hold is an error that names the action, never a guess.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Action, ActionKind, ActionStatus, Change, Field, GroupRef, Hold, ObjectKind, Plan, PlanStatus,
    Reason, Subject, Summary, UserRef,
};
use crate::config::Mode;

/// The plan file. `A` is the actions: a `Vec<ActionJson>` when read, a borrowed view of the
/// model's actions when written (a large plan is streamed, never copied whole).
/// Every type here refuses a field it does not know: a plan file roster did not write is
/// not read as one that means the same (a misspelt optional field would otherwise read as
/// absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanJson<A = Vec<ActionJson>> {
    pub format_version: u32,
    pub plan_id: String,
    pub created_at: DateTime<Utc>,
    pub summary: SummaryJson,
    pub actions: A,
    pub mode: Mode,
    pub config_digest: String,
    pub desired_digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_means: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_means: Option<String>,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<u64>,
    /// Every account in the target, the base of a percent `max-adds` (with `managed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_accounts: Option<u64>,
    /// `--initial`: a first load, whose adds no cap counts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub initial: bool,
    /// `hmac-sha256:<hex>` over the plan without this field (`plan::seal`), when the plan
    /// was made with a `plan-signing-key`. Last, so that it reads as a seal on the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryJson {
    pub add: u64,
    pub update: u64,
    pub remove: u64,
    pub delete: u64,
    pub held: u64,
    pub unchanged: u64,
    pub rejected: u64,
    #[serde(default)]
    pub unmanaged: u64,
    #[serde(default)]
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ignored_members: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionJson {
    pub seq: u32,
    pub action: String,
    pub object: String,
    pub key: String,
    pub username: String,
    pub status: String,
    /// The reasons joined with "; ", and `; failed: <error>` when applying failed.
    pub reason: String,
    pub changes: Vec<ChangeJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeJson {
    pub field: String,
    /// Absent in a compact plan file when there is no value.
    #[serde(default)]
    pub before: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
}

/// A plan file or plan row that is not what roster writes.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("not a roster plan: {0}")]
    Json(#[from] serde_json::Error),
    #[error("action {seq}: {what}")]
    Action { seq: u32, what: String },
}

/// The model's actions, serialized one by one as `ActionJson` as the plan yields them
/// (from memory, or read from the store: `Plan::each_action`).
pub struct Actions<'a>(&'a Plan);

impl Serialize for Actions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        serialize_each(self.0, serializer, |seq, a| {
            seq.serialize_element(&ActionView::of(a))
        })
    }
}

/// Serializes `plan`'s actions as a sequence, each written by `element` while it is read
/// (from memory or the store's draft): a read failure fails the serialization.
fn serialize_each<S: serde::Serializer>(
    plan: &Plan,
    serializer: S,
    element: impl Fn(&mut S::SerializeSeq, &Action) -> Result<(), S::Error>,
) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeSeq};
    let mut seq = serializer.serialize_seq(None)?;
    let mut failed: Option<S::Error> = None;
    let read = plan.each_action(|a| {
        element(&mut seq, a).map_err(|e| {
            failed = Some(e);
            std::io::Error::other("serializing an action failed")
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    read.map_err(S::Error::custom)?;
    seq.end()
}

/// The plan as the contract writes it, its actions converted while they are written.
/// Unsigned: this is also the canonical form that `plan::seal` digests and signs.
pub fn view(plan: &Plan) -> PlanJson<Actions<'_>> {
    header_with(plan, Actions(plan))
}

/// The plan file: the plan with its signature, if it has one.
pub fn signed_view<'a>(plan: &'a Plan, signature: Option<&str>) -> PlanJson<Actions<'a>> {
    PlanJson {
        signature: signature.map(str::to_string),
        ..view(plan)
    }
}

/// The plan file's form of the plan: the contract's fields, each action written compact
/// (`CompactAction`: what a reader rebuilds is left out). Only the file is written this way;
/// `--format json` and the seal keep `view`'s verbose form, and `read_signed_from` reads
/// both.
pub fn file_view<'a>(plan: &'a Plan, signature: Option<&str>) -> PlanJson<FileActions<'a>> {
    // The actions as `view` gives them, each written compact.
    PlanJson {
        signature: signature.map(str::to_string),
        ..header_with(plan, FileActions(view(plan).actions))
    }
}

/// The model's actions, serialized one by one in the plan file's compact form.
pub struct FileActions<'a>(Actions<'a>);

impl Serialize for FileActions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        serialize_each((self.0).0, serializer, |seq, a| {
            seq.serialize_element(&CompactAction(ActionView::of(a)))
        })
    }
}

/// An action as the plan file writes it: the contract's fields in the contract's order,
/// less what the reader puts back exactly (`FileActionJson`): `object` when it is `user`,
/// `status` when it is `planned`, `reason` when it is the default reason of the action
/// (`default_reason`), `changes` when there are none, and a change's `before` / `after`
/// when it has no value.
struct CompactAction<'a>(ActionView<'a>);

impl Serialize for CompactAction<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let a = &self.0;
        let mut out = serializer.serialize_struct("ActionJson", 12)?;
        out.serialize_field("seq", &a.seq)?;
        out.serialize_field("action", a.action)?;
        if a.object != DEFAULT_OBJECT {
            out.serialize_field("object", a.object)?;
        }
        out.serialize_field("key", &a.key)?;
        out.serialize_field("username", a.username)?;
        if a.status != DEFAULT_STATUS {
            out.serialize_field("status", a.status)?;
        }
        let changes = a.changes.0.iter().map(ChangeView::of);
        if default_reason(a.action, a.object, changes).as_ref() != Some(&a.reason) {
            out.serialize_field("reason", &a.reason)?;
        }
        if !a.changes.0.is_empty() {
            out.serialize_field("changes", &CompactChanges(a.changes.0))?;
        }
        for (name, value) in [
            ("held_by", a.held_by.as_deref()),
            ("target_id", a.target_id),
            ("target_version", a.target_version),
            ("target_digest", a.target_digest),
        ] {
            if value.is_some() {
                out.serialize_field(name, &value)?;
            }
        }
        out.end()
    }
}

/// An action's changes as the plan file writes them: a change's `before` / `after` left out
/// when it has no value (`ChangeJson` reads them back as `None`). The store's draft keeps its
/// rows' changes so too.
pub struct CompactChanges<'a>(pub &'a [Change]);

impl Serialize for CompactChanges<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        serializer.collect_seq(self.0.iter().map(|c| {
            struct Compact<'a>(ChangeView<'a>);
            impl Serialize for Compact<'_> {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let c = &self.0;
                    let mut out = s.serialize_struct("ChangeJson", 3)?;
                    out.serialize_field("field", c.field)?;
                    if c.before.is_some() {
                        out.serialize_field("before", &c.before)?;
                    }
                    if c.after.is_some() {
                        out.serialize_field("after", &c.after)?;
                    }
                    out.end()
                }
            }
            Compact(ChangeView::of(c))
        }))
    }
}

/// What a compact action without `object` is about.
const DEFAULT_OBJECT: &str = "user";
/// Where a compact action without `status` stands.
const DEFAULT_STATUS: &str = "planned";

/// The reason the planner gives an action of this kind when nothing else is to be said,
/// from what the action itself holds (its kind, object and changes), in the contract's
/// words: a compact plan file leaves it out and a reader puts it back from the same fields.
/// `None` where no reason is the usual one.
fn default_reason<'c>(
    action: &str,
    object: &str,
    changes: impl Iterator<Item = ChangeView<'c>> + Clone,
) -> Option<String> {
    let group = || {
        changes
            .clone()
            .find(|c| c.field == "group")
            .and_then(|c| c.after.or(c.before))
            .map(str::to_string)
    };
    let reason = match (ActionKind::parse(action)?, ObjectKind::parse(object)?) {
        (ActionKind::Add, ObjectKind::User | ObjectKind::Group) => Reason::NotInTarget,
        (ActionKind::Update, ObjectKind::User) => {
            let mut fields: Vec<Field> = Vec::new();
            for change in changes.clone() {
                let field = user_field(change.field)?;
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
            if fields.is_empty() {
                return None;
            }
            Reason::Changed(fields)
        }
        (ActionKind::Remove, ObjectKind::User) => Reason::GoneRemove,
        (ActionKind::Delete, ObjectKind::User) => Reason::GoneDelete,
        (ActionKind::Delete, ObjectKind::Group) => Reason::GroupGone,
        (ActionKind::Add, ObjectKind::Membership) => Reason::MemberOf(group()?),
        (ActionKind::Remove, ObjectKind::Membership) => Reason::NotMemberOf(group()?),
        _ => return None,
    };
    Some(reason.to_string())
}

/// An action as a plan file has it, verbose (every field, as `ActionJson`) or compact (as
/// `CompactAction` writes it): the fields a compact file leaves out read as what it left
/// out. Read only; the contract's own form is `ActionJson`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileActionJson {
    seq: u32,
    action: String,
    #[serde(default = "default_object")]
    object: String,
    key: String,
    username: String,
    #[serde(default = "default_status")]
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    changes: Vec<ChangeJson>,
    #[serde(default)]
    held_by: Option<String>,
    #[serde(default)]
    target_id: Option<String>,
    #[serde(default)]
    target_version: Option<String>,
    #[serde(default)]
    target_digest: Option<String>,
}

fn default_object() -> String {
    DEFAULT_OBJECT.to_string()
}

fn default_status() -> String {
    DEFAULT_STATUS.to_string()
}

impl FileActionJson {
    /// The contract's form of the action, with what a compact file left out put back.
    fn into_json(self) -> Result<ActionJson, ContractError> {
        let reason = match self.reason {
            Some(reason) => reason,
            None => default_reason(
                &self.action,
                &self.object,
                self.changes.iter().map(ChangeView::from_json),
            )
            .ok_or_else(|| ContractError::Action {
                seq: self.seq,
                what: format!(
                    "no reason, and a {} {} has no default one",
                    self.action, self.object
                ),
            })?,
        };
        Ok(ActionJson {
            seq: self.seq,
            action: self.action,
            object: self.object,
            key: self.key,
            username: self.username,
            status: self.status,
            reason,
            changes: self.changes,
            held_by: self.held_by,
            target_id: self.target_id,
            target_version: self.target_version,
            target_digest: self.target_digest,
        })
    }
}

/// A row of actions a plan is read from: the contract's (`ActionJson`, the store's rows) or a
/// plan file's (`FileActionJson`).
pub trait ActionRow {
    fn into_action(self) -> Result<Action, ContractError>;
}

impl ActionRow for ActionJson {
    fn into_action(self) -> Result<Action, ContractError> {
        ActionJson::into_action(self)
    }
}

impl ActionRow for FileActionJson {
    fn into_action(self) -> Result<Action, ContractError> {
        self.into_json()?.into_action()
    }
}

/// Everything but the actions (the store keeps those as rows).
pub fn header(plan: &Plan) -> PlanJson {
    header_with(plan, Vec::new())
}

fn header_with<A>(plan: &Plan, actions: A) -> PlanJson<A> {
    PlanJson {
        format_version: plan.format_version,
        plan_id: plan.plan_id.clone(),
        created_at: plan.created_at,
        summary: SummaryJson::from(&plan.summary),
        actions,
        mode: plan.mode,
        config_digest: plan.config_digest.clone(),
        desired_digest: plan.desired_digest.clone(),
        forced: plan.forced.clone(),
        notes: plan.notes.clone(),
        remove_means: plan.remove_means.clone(),
        delete_means: plan.delete_means.clone(),
        target: plan.target.clone(),
        max_removes: plan.max_removes,
        managed: plan.managed,
        target_accounts: plan.target_accounts,
        initial: plan.initial,
        signature: None,
    }
}

/// A plan from its JSON (verbose or compact), converted strictly.
pub fn read(value: serde_json::Value) -> Result<Plan, ContractError> {
    read_signed(value).map(|(plan, _)| plan)
}

/// A plan file: the plan, and the signature it carries, if any.
pub fn read_signed(value: serde_json::Value) -> Result<(Plan, Option<String>), ContractError> {
    signed(serde_json::from_value::<PlanJson<Vec<FileActionJson>>>(
        value,
    )?)
}

/// A plan file's text: the plan and its signature, read straight into the contract's types,
/// never through a `serde_json::Value` of the whole file (a tree of the file takes several
/// times its size: applying a plan of 100,000 adds peaked at 648 MiB that way).
pub fn read_signed_text(text: &str) -> Result<(Plan, Option<String>), ContractError> {
    signed(serde_json::from_str::<PlanJson<Converted<FileActionJson>>>(
        text,
    )?)
}

/// The same from a reader (a plan file, plain or through its decompressor), never holding
/// the file's text. Give it a buffered reader: serde_json reads it byte by byte.
pub fn read_signed_from(
    reader: impl std::io::Read,
) -> Result<(Plan, Option<String>), ContractError> {
    signed(serde_json::from_reader::<
        _,
        PlanJson<Converted<FileActionJson>>,
    >(reader)?)
}

fn signed<L: ActionList>(mut json: PlanJson<L>) -> Result<(Plan, Option<String>), ContractError> {
    let signature = json.signature.take();
    Ok((json.into_plan()?, signature))
}

/// A plan file's actions, each converted into the model's `Action` as soon as it is read,
/// so that the file's rows are never all held beside the plan they become: reading a plan
/// of 100,000 adds held both, the rows' `changes` alone 58 MiB (heaptrack: 167 MiB of heap
/// at its peak). The first row that does not convert is kept as the error, and the rows
/// after it are still read as rows, so that a file is refused for the same reason as when
/// every row was read first.
pub struct Converted<A> {
    actions: Vec<Action>,
    failed: Option<ContractError>,
    row: std::marker::PhantomData<A>,
}

impl<'de, A: ActionRow + Deserialize<'de>> Deserialize<'de> for Converted<A> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Rows<A>(std::marker::PhantomData<A>);
        impl<'de, A: ActionRow + Deserialize<'de>> serde::de::Visitor<'de> for Rows<A> {
            type Value = Converted<A>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of actions")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut rows: S,
            ) -> Result<Self::Value, S::Error> {
                let mut actions = Vec::new();
                let mut failed = None;
                while let Some(row) = rows.next_element::<A>()? {
                    if failed.is_none() {
                        match row.into_action() {
                            Ok(action) => actions.push(action),
                            Err(e) => failed = Some(e),
                        }
                    }
                }
                Ok(Converted {
                    actions,
                    failed,
                    row: std::marker::PhantomData,
                })
            }
        }
        deserializer.deserialize_seq(Rows(std::marker::PhantomData))
    }
}

impl<A> ActionList for Converted<A> {
    fn into_actions(self) -> Result<Vec<Action>, ContractError> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.actions),
        }
    }
}

impl<A: ActionRow> ActionList for Vec<A> {
    fn into_actions(self) -> Result<Vec<Action>, ContractError> {
        self.into_iter()
            .map(ActionRow::into_action)
            .collect::<Result<Vec<_>, _>>()
    }
}

/// The actions of a plan as read: rows still to convert, or converted as they were read.
pub trait ActionList {
    fn into_actions(self) -> Result<Vec<Action>, ContractError>;
}

impl<L: ActionList> PlanJson<L> {
    pub fn into_plan(self) -> Result<Plan, ContractError> {
        let actions = self.actions.into_actions()?;
        Ok(Plan {
            format_version: self.format_version,
            plan_id: self.plan_id,
            created_at: self.created_at,
            summary: Summary::from(self.summary),
            actions,
            stored: None,
            mode: self.mode,
            config_digest: self.config_digest,
            desired_digest: self.desired_digest,
            forced: self.forced,
            notes: self.notes,
            remove_means: self.remove_means,
            delete_means: self.delete_means,
            target: self.target,
            max_removes: self.max_removes,
            managed: self.managed,
            target_accounts: self.target_accounts,
            initial: self.initial,
        })
    }
}

impl From<&Summary> for SummaryJson {
    fn from(s: &Summary) -> SummaryJson {
        SummaryJson {
            add: s.add,
            update: s.update,
            remove: s.remove,
            delete: s.delete,
            held: s.held,
            unchanged: s.unchanged,
            rejected: s.rejected,
            unmanaged: s.unmanaged,
            skipped: s.skipped,
            ignored_members: s.ignored_members,
        }
    }
}

impl From<SummaryJson> for Summary {
    fn from(s: SummaryJson) -> Summary {
        Summary {
            add: s.add,
            update: s.update,
            remove: s.remove,
            delete: s.delete,
            held: s.held,
            unchanged: s.unchanged,
            rejected: s.rejected,
            unmanaged: s.unmanaged,
            skipped: s.skipped,
            ignored_members: s.ignored_members,
        }
    }
}

/// The `key` the contract writes for an action about `subject`.
pub fn subject_key(subject: &Subject) -> std::borrow::Cow<'_, str> {
    match subject {
        Subject::User(UserRef { key, .. }) | Subject::Group(GroupRef { key, .. }) => {
            std::borrow::Cow::Borrowed(key)
        }
        Subject::Membership(m) => {
            std::borrow::Cow::Owned(membership_key(&m.group.key, &m.user.key))
        }
    }
}

/// `ActionJson` borrowed from an action: the same fields in the same order, serialized byte
/// for byte as `ActionJson` is (the seal digests this form), without copying the action's
/// text. Every pass that writes a plan (stdout, the plan file, the seal, the draft) goes
/// through it, once per action each.
#[derive(Debug, Serialize)]
pub struct ActionView<'a> {
    pub seq: u32,
    pub action: &'static str,
    pub object: &'static str,
    pub key: std::borrow::Cow<'a, str>,
    pub username: &'a str,
    pub status: &'static str,
    pub reason: String,
    pub changes: ChangesView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_digest: Option<&'a str>,
}

impl<'a> ActionView<'a> {
    pub fn of(a: &'a Action) -> ActionView<'a> {
        ActionView {
            seq: a.seq,
            action: a.action.as_str(),
            object: a.object().as_str(),
            key: subject_key(&a.subject),
            username: a.name(),
            status: a.status.as_str(),
            reason: a.reason(),
            changes: ChangesView(&a.changes),
            held_by: a.hold.as_deref().map(Hold::to_string),
            target_id: a.target_id.as_deref(),
            target_version: a.target_version.as_deref(),
            target_digest: a.target_digest.as_deref(),
        }
    }
}

/// An action's changes as `Vec<ChangeJson>` serializes them.
#[derive(Debug)]
pub struct ChangesView<'a>(pub &'a [Change]);

impl Serialize for ChangesView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ChangeView::of))
    }
}

/// `ChangeJson` borrowed: from a change, or from a `ChangeJson` read from a file.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChangeView<'a> {
    pub field: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
}

impl<'a> ChangeView<'a> {
    fn of(c: &'a Change) -> ChangeView<'a> {
        ChangeView {
            field: c.field.name(),
            before: c.before.as_deref(),
            after: c.after.as_deref(),
        }
    }

    fn from_json(c: &'a ChangeJson) -> ChangeView<'a> {
        ChangeView {
            field: &c.field,
            before: c.before.as_deref(),
            after: c.after.as_deref(),
        }
    }
}

impl From<&Action> for ActionJson {
    fn from(a: &Action) -> ActionJson {
        ActionJson {
            seq: a.seq,
            action: a.action.as_str().to_string(),
            object: a.object().as_str().to_string(),
            key: subject_key(&a.subject).into_owned(),
            username: a.name().to_string(),
            status: a.status.as_str().to_string(),
            reason: a.reason(),
            changes: a
                .changes
                .iter()
                .map(|c| ChangeJson {
                    field: c.field.to_string(),
                    before: c.before.as_deref().map(String::from),
                    after: c.after.as_deref().map(String::from),
                })
                .collect(),
            held_by: a.hold.as_deref().map(Hold::to_string),
            target_id: a.target_id.clone(),
            target_version: a.target_version.clone(),
            target_digest: a.target_digest.clone(),
        }
    }
}

impl ActionJson {
    pub fn into_action(self) -> Result<Action, ContractError> {
        let seq = self.seq;
        let bad = |what: String| ContractError::Action { seq, what };
        let action = ActionKind::parse(&self.action)
            .ok_or_else(|| bad(format!("unknown action {:?}", self.action)))?;
        let object = ObjectKind::parse(&self.object)
            .ok_or_else(|| bad(format!("unknown object {:?}", self.object)))?;
        let status = ActionStatus::parse(&self.status)
            .ok_or_else(|| bad(format!("unknown status {:?}", self.status)))?;
        let field: fn(&str) -> Option<Field> = match object {
            ObjectKind::User => user_field,
            ObjectKind::Group => group_field,
            ObjectKind::Membership => membership_field,
        };
        // Exactly as many as there are: collected in place, the changes would keep the
        // rows' larger buffer (serde grows it by doubling: room for 8 where an add has 5),
        // held with every action of a plan held whole.
        let mut changes = Vec::with_capacity(self.changes.len());
        for c in self.changes {
            let Some(field) = field(&c.field) else {
                return Err(bad(format!(
                    "unknown field {:?} for a {} action",
                    c.field,
                    object.as_str()
                )));
            };
            changes.push(Change {
                field,
                before: c.before.map(Box::from),
                after: c.after.map(Box::from),
            });
        }
        let subject = match object {
            ObjectKind::User => Subject::User(UserRef {
                key: self.key,
                username: self.username,
            }),
            ObjectKind::Group => Subject::Group(GroupRef {
                key: self.key,
                name: self.username,
            }),
            ObjectKind::Membership => {
                let (group_key, user_key) = split_membership_key(&self.key).ok_or_else(|| {
                    bad(format!(
                        "the membership key {:?} names no group and user",
                        self.key
                    ))
                })?;
                let group_name = changes
                    .iter()
                    .find(|c| c.field == Field::Group)
                    .and_then(|c| c.after.as_deref().or(c.before.as_deref()))
                    .ok_or_else(|| bad("the membership names no group".to_string()))?;
                Subject::membership(
                    GroupRef {
                        key: group_key,
                        name: group_name.to_string(),
                    },
                    UserRef {
                        key: user_key,
                        username: self.username,
                    },
                )
            }
        };
        // Applying it failed: the error follows the reasons (the reasons' own texts never
        // say "; failed: ").
        let (reason, error) = match self.reason.split_once("; failed: ") {
            Some((reason, error)) => (reason, Some(error.to_string())),
            None => (self.reason.as_str(), None),
        };
        let reasons = Reason::parse_all(reason, &user_field)
            .ok_or_else(|| bad(format!("unknown reason {reason:?}")))?;
        let hold = self
            .held_by
            .map(|text| Hold::parse(&text).ok_or_else(|| bad(format!("unknown held_by {text:?}"))))
            .transpose()?;
        Ok(Action {
            seq,
            action,
            subject,
            status,
            reasons,
            error,
            changes,
            hold: hold.map(Box::new),
            target_id: self.target_id,
            target_version: self.target_version,
            target_digest: self.target_digest,
        })
    }
}

/// `<group key>/<user key>`, the group key escaped so that the first `/` separates them.
fn membership_key(group_key: &str, user_key: &str) -> String {
    format!(
        "{}/{user_key}",
        group_key.replace('%', "%25").replace('/', "%2F")
    )
}

/// The group key and user key of a membership action's key.
fn split_membership_key(key: &str) -> Option<(String, String)> {
    let (group, user) = key.split_once('/')?;
    Some((
        group.replace("%2F", "/").replace("%25", "%"),
        user.to_string(),
    ))
}

impl Field {
    /// The field's name in the plan: the contract's spelling, or the target attribute a
    /// mapping names.
    pub fn name(&self) -> &str {
        match self {
            Field::Key => "externalId",
            Field::Username => "username",
            Field::Name => "name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::Active => "active",
            Field::Owner => "owner",
            Field::GroupName => "displayName",
            Field::Group => "group",
            Field::Member => "member",
            Field::Attribute(name) => name,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user action's field from its name; any other name is a mapped attribute.
pub fn user_field(name: &str) -> Option<Field> {
    Some(match name {
        "" => return None,
        "externalId" => Field::Key,
        "username" => Field::Username,
        "name" => Field::Name,
        "email" => Field::Email,
        "phone" => Field::Phone,
        "active" => Field::Active,
        "owner" => Field::Owner,
        other => Field::Attribute(other.to_string()),
    })
}

fn group_field(name: &str) -> Option<Field> {
    match name {
        "externalId" => Some(Field::Key),
        "displayName" => Some(Field::GroupName),
        _ => None,
    }
}

fn membership_field(name: &str) -> Option<Field> {
    match name {
        "group" => Some(Field::Group),
        "member" => Some(Field::Member),
        _ => None,
    }
}

/// The spellings of the closed enums, in the plan and in the store's columns.
macro_rules! spelled {
    ($type:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$type> {
                match s {
                    $($text => Some($type::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

spelled!(ActionKind {
    Add => "add",
    Update => "update",
    Remove => "remove",
    Delete => "delete",
});

spelled!(ObjectKind {
    User => "user",
    Group => "group",
    Membership => "membership",
});

spelled!(ActionStatus {
    Planned => "planned",
    Held => "held",
    Applying => "applying",
    Applied => "applied",
    Failed => "failed",
    Skipped => "skipped",
});

spelled!(PlanStatus {
    Planned => "planned",
    Applying => "applying",
    Applied => "applied",
    Partial => "partial",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Plan files written by roster before the model and the contract were split.
    const FIXTURES: [&str; 2] = [
        include_str!("../../tests/fixtures/plan_v1.json"),
        include_str!("../../tests/fixtures/plan_v1_groups.json"),
    ];

    fn written(plan: &Plan) -> String {
        let mut text = serde_json::to_string_pretty(&view(plan)).expect("serialize");
        text.push('\n');
        text
    }

    #[test]
    fn plan_files_of_before_read_and_write_back_byte_for_byte() {
        for fixture in FIXTURES {
            let value = serde_json::from_str(fixture).expect("json");
            let plan = read(value).expect("a plan");
            assert_eq!(written(&plan), fixture);
        }
    }

    #[test]
    fn the_borrowed_view_writes_what_the_owned_form_writes() {
        for fixture in FIXTURES {
            let plan = read(serde_json::from_str(fixture).expect("json")).expect("a plan");
            assert!(plan.actions.iter().any(|a| a.hold.is_some()));
            for a in &plan.actions {
                let owned = serde_json::to_string(&ActionJson::from(a)).expect("json");
                let view = serde_json::to_string(&ActionView::of(a)).expect("json");
                assert_eq!(view, owned);
            }
        }
    }

    #[test]
    fn the_compact_form_reads_back_as_the_same_plan() {
        for fixture in FIXTURES {
            let plan = read(serde_json::from_str(fixture).expect("json")).expect("a plan");
            let compact = serde_json::to_string(&file_view(&plan, None)).expect("serialize");
            let verbose = serde_json::to_string(&view(&plan)).expect("serialize");
            assert!(compact.len() < verbose.len(), "{compact}");
            assert!(!compact.contains("null"), "{compact}");
            let (back, signature) = read_signed_text(&compact).expect("a plan");
            assert_eq!(back, plan);
            assert_eq!(signature, None);
            // What is sealed is the verbose form, whichever form the plan was read from.
            assert_eq!(written(&back), fixture);
        }
        let plan = read(serde_json::from_str(FIXTURES[0]).expect("json")).expect("a plan");
        let signed =
            serde_json::to_string(&file_view(&plan, Some("hmac-sha256:00"))).expect("json");
        let (_, signature) = read_signed_text(&signed).expect("a plan");
        assert_eq!(signature.as_deref(), Some("hmac-sha256:00"));
    }

    #[test]
    fn a_file_read_action_by_action_is_refused_as_when_every_row_was_read_first() {
        let plan = read(serde_json::from_str(FIXTURES[0]).expect("json")).expect("a plan");
        let file = serde_json::to_value(file_view(&plan, None)).expect("json");
        assert!(file["actions"].as_array().is_some_and(|a| a.len() > 1));
        // Both readers, on the same text: the one that holds every row, then converts
        // (`read`), and the one that converts each row as it is read.
        let both = |file: &serde_json::Value| {
            let whole = read_signed(file.clone()).map(|(plan, _)| plan);
            let each = read_signed_text(&file.to_string()).map(|(plan, _)| plan);
            (
                whole.map_err(|e| e.to_string()),
                each.map_err(|e| e.to_string()),
            )
        };
        let (whole, each) = both(&file);
        assert_eq!(each.as_ref().ok(), Some(&plan));
        assert_eq!(whole.ok(), each.ok());

        // A row that does not convert (an unknown status): that action is named.
        let mut bad = file.clone();
        bad["actions"][0]["status"] = "maybe".into();
        let (whole, each) = both(&bad);
        let each = each.expect_err("refused");
        assert!(each.starts_with("action "), "{each}");
        assert_eq!(whole.expect_err("refused"), each);

        // The same, with a later row that is not an action at all: the file is not a plan.
        bad["actions"][1]["seq"] = "one".into();
        let (whole, each) = both(&bad);
        let each = each.expect_err("refused");
        assert!(each.starts_with("not a roster plan:"), "{each}");
        assert!(
            whole
                .expect_err("refused")
                .starts_with("not a roster plan:")
        );
    }

    #[test]
    fn the_compact_form_leaves_out_only_what_the_reader_puts_back() {
        let plan = read(serde_json::from_str(FIXTURES[1]).expect("json")).expect("a plan");
        let compact = serde_json::to_value(file_view(&plan, None)).expect("json");
        let verbose = serde_json::to_value(view(&plan)).expect("json");
        let mut left_out = std::collections::BTreeSet::new();
        for (c, v) in compact["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .zip(verbose["actions"].as_array().expect("actions"))
        {
            let (c, v) = (
                c.as_object().expect("object"),
                v.as_object().expect("object"),
            );
            for (name, value) in v {
                match c.get(name) {
                    // A change is kept less its nulls; anything else as it is.
                    Some(kept) if name == "changes" => {
                        let mut without_nulls = value.clone();
                        for change in without_nulls.as_array_mut().expect("changes") {
                            change
                                .as_object_mut()
                                .expect("change")
                                .retain(|_, v| !v.is_null());
                        }
                        assert_eq!(kept, &without_nulls);
                    }
                    Some(kept) => assert_eq!(kept, value, "{name}"),
                    None => {
                        match name.as_str() {
                            "object" => assert_eq!(value, "user"),
                            "status" => assert_eq!(value, "planned"),
                            "changes" => assert_eq!(value, &serde_json::json!([])),
                            "reason" => {
                                let object = v["object"].as_str().expect("object");
                                let changes: Vec<ChangeJson> =
                                    serde_json::from_value(v["changes"].clone()).expect("changes");
                                let action = v["action"].as_str().expect("action");
                                assert_eq!(
                                    default_reason(
                                        action,
                                        object,
                                        changes.iter().map(ChangeView::from_json)
                                    )
                                    .as_deref(),
                                    value.as_str()
                                );
                            }
                            other => panic!("{other} left out: {c:?}"),
                        };
                        left_out.insert(name.clone());
                    }
                }
            }
        }
        // The fixture has actions of every default, and of none.
        assert_eq!(
            left_out.into_iter().collect::<Vec<_>>(),
            ["changes", "object", "reason", "status"]
        );
        let kept_reasons = compact["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter(|a| a.get("reason").is_some())
            .count();
        assert!(kept_reasons > 0);
    }

    #[test]
    fn a_compact_action_without_a_reason_of_its_kind_is_refused() {
        let plan = read(serde_json::from_str(FIXTURES[1]).expect("json")).expect("a plan");
        let mut value = serde_json::to_value(file_view(&plan, None)).expect("json");
        let action = value["actions"]
            .as_array_mut()
            .and_then(|a| {
                a.iter_mut()
                    .find(|a| a["action"] == "update" && a.get("reason").is_some())
            })
            .expect("an update with its own reason");
        let seq = action["seq"].clone();
        action["changes"] = serde_json::json!([]);
        action.as_object_mut().map(|a| a.remove("reason"));
        let err = read(value).expect_err("no reason").to_string();
        assert_eq!(
            err,
            format!("action {seq}: no reason, and a update user has no default one")
        );
    }

    #[test]
    fn a_membership_reads_as_its_group_and_user() {
        let value = serde_json::from_str(FIXTURES[1]).expect("json");
        let plan = read(value).expect("a plan");
        let membership = plan
            .actions
            .iter()
            .find(|a| a.object() == ObjectKind::Membership && a.name() == "alice")
            .expect("alice's membership");
        assert_eq!(
            membership.subject,
            Subject::membership(
                GroupRef {
                    key: "k/Sales%".into(),
                    name: "Sales; East".into()
                },
                UserRef {
                    key: "k-alice".into(),
                    username: "alice".into()
                },
            )
        );
        assert_eq!(
            membership.reasons,
            vec![Reason::MemberOf("Sales; East".into())]
        );
        let failed = &plan.actions[0];
        assert_eq!(failed.status, ActionStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("POST /Users: 409 conflict"));
        assert_eq!(failed.reasons, vec![Reason::NotInTarget]);
    }

    #[test]
    fn membership_keys_split_back() {
        for (group, user) in [("k", "u"), ("a/b%2F", "c/d"), ("%", "")] {
            let key = membership_key(group, user);
            assert_eq!(
                split_membership_key(&key),
                Some((group.to_string(), user.to_string())),
                "{key}"
            );
        }
    }

    #[test]
    fn anything_unknown_is_refused_naming_the_action() {
        let value: serde_json::Value = serde_json::from_str(FIXTURES[1]).expect("json");
        let cases: [(&str, &str, serde_json::Value); 5] = [
            ("status", "unknown status \"done\"", "done".into()),
            ("action", "unknown action \"create\"", "create".into()),
            ("object", "unknown object \"role\"", "role".into()),
            ("reason", "unknown reason \"because\"", "because".into()),
            ("held_by", "unknown held_by \"a cap\"", "a cap".into()),
        ];
        for (field, message, bad) in cases {
            let mut value = value.clone();
            value["actions"][2][field] = bad;
            let err = read(value).expect_err(field).to_string();
            assert_eq!(err, format!("action 3: {message}"));
        }
        let mut value = value.clone();
        value["actions"][9]["changes"][1]["field"] = "title".into();
        let err = read(value).expect_err("field").to_string();
        assert_eq!(err, "action 10: unknown field \"title\" for a group action");
    }

    #[test]
    fn statuses_and_kinds_are_spelled_one_way() {
        for s in [
            ActionStatus::Planned,
            ActionStatus::Held,
            ActionStatus::Applying,
            ActionStatus::Applied,
            ActionStatus::Failed,
            ActionStatus::Skipped,
        ] {
            assert_eq!(ActionStatus::parse(s.as_str()), Some(s));
        }
        for s in [
            PlanStatus::Planned,
            PlanStatus::Applying,
            PlanStatus::Applied,
            PlanStatus::Partial,
        ] {
            assert_eq!(PlanStatus::parse(s.as_str()), Some(s));
        }
        for name in [
            "externalId",
            "username",
            "name",
            "email",
            "phone",
            "active",
            "owner",
            "title",
        ] {
            assert_eq!(
                user_field(name).map(|f| f.to_string()).as_deref(),
                Some(name)
            );
        }
    }
}
