//! Applying group and membership actions.
//!
//! Group actions (add, rename/adopt, delete) run with the user actions, one target call
//! each. Membership actions run after all of those have finished, for two reasons:
//! - **Dependencies.** A membership names a user and a group by target id, and when the
//!   user or the group is created by the same plan, the plan cannot know that id. The add
//!   that creates it journals the id (`result_id`); the membership takes it from the journal
//!   (the add of the same key in the same plan). If that add failed or is still held, the
//!   membership fails with a message that says so, and a later apply of the plan retries it.
//! - **Batching.** Member changes go to the target in requests of at most
//!   `Target::max_member_changes` (100 for SCIM), one group per request; each action is
//!   journaled before and after the request that carries it, so a killed apply resumes
//!   without losing track (re-adding a member or re-removing one is harmless).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ActionError, ApplyError, now};
use crate::plan::{Action, ActionKind, ObjectKind, Status};
use crate::planner::groups::{membership_parts, split_membership_key};
use crate::progress::Counter;
use crate::store::Store;
use crate::target::{GroupUpdate, Target};

/// What one action ended as: its index in the plan, status and error.
pub(super) type Outcome = (usize, Status, Option<String>);

/// Splits the actions to do into the membership actions and the rest.
pub(super) fn split_memberships(todo: Vec<usize>, actions: &[Action]) -> (Vec<usize>, Vec<usize>) {
    todo.into_iter()
        .partition(|&i| actions[i].object != ObjectKind::Membership)
}

/// One group action's target call. Returns the id a group add created or adopted.
pub(super) fn execute(
    action: &Action,
    target: &dyn Target,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    let id = || action.target_id.as_deref().ok_or(ActionError::NoTargetId);
    let version = action.target_version.as_deref();
    match (action.object, action.action) {
        (ObjectKind::Group, ActionKind::Add) => add_group(action, target, interrupted),
        (ObjectKind::Group, ActionKind::Update) => {
            target.update_group(id()?, version, &group_update(action))?;
            Ok(None)
        }
        (ObjectKind::Group, _) => {
            target.delete_group(id()?, version)?;
            Ok(None)
        }
        (object, kind) => Err(ActionError::NotHere(format!(
            "{} {} actions are applied with the memberships",
            kind.as_str(),
            object.as_str()
        ))),
    }
}

/// Creates the group; if it already exists (an interrupted apply, or a create refused as a
/// duplicate), adopts the existing group when it is ours or unmanaged.
fn add_group(
    action: &Action,
    target: &dyn Target,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    let name = action.after("displayName").unwrap_or(&action.username);
    if interrupted && let Some(existing) = target.find_group(&action.key, name)? {
        return adopt_group(action, name, existing, target);
    }
    match target.create_group(&action.key, name) {
        Ok(created) => Ok(Some(created.id)),
        Err(e) if e.is_conflict() => match target.find_group(&action.key, name)? {
            Some(existing) => adopt_group(action, name, existing, target),
            None => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

fn adopt_group(
    action: &Action,
    name: &str,
    existing: crate::model::TargetGroup,
    target: &dyn Target,
) -> Result<Option<String>, ActionError> {
    if let Some(key) = existing.external_id.as_deref()
        && key != action.key
    {
        return Err(ActionError::GroupTaken {
            name: name.to_string(),
            key: key.to_string(),
        });
    }
    let update = GroupUpdate {
        external_id: existing.external_id.is_none().then(|| action.key.clone()),
        name: (existing.name != name).then(|| name.to_string()),
    };
    if update != GroupUpdate::default() {
        target.update_group(&existing.id, existing.version.as_deref(), &update)?;
    }
    log::info!(
        "add group {name}: adopted the existing group {}",
        existing.id
    );
    Ok(Some(existing.id))
}

fn group_update(action: &Action) -> GroupUpdate {
    GroupUpdate {
        external_id: action.after("externalId").map(str::to_string),
        name: action.after("displayName").map(str::to_string),
    }
}

/// One membership, ready to send: which group, which member, which way.
struct MemberChange {
    index: usize,
    seq: u32,
    add: bool,
    member: String,
}

/// Applies the membership actions `todo` (indices into `actions`), after every other
/// action of the plan has run: resolves ids from the plan and the journal, then sends the
/// changes per group in batches, `concurrency` groups at a time.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_memberships(
    actions: &[Action],
    todo: &[usize],
    store: &Store,
    target: &dyn Target,
    plan_id: &str,
    concurrency: usize,
    bar: &Counter,
) -> Result<Vec<Outcome>, ApplyError> {
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let created = CreatedIds::from_journal(actions, store, plan_id)?;
    let mut outcomes = Vec::new();
    let mut batches: BTreeMap<String, Vec<MemberChange>> = BTreeMap::new();
    for &index in todo {
        let action = &actions[index];
        match created.resolve(action) {
            Ok((group, member)) => batches.entry(group).or_default().push(MemberChange {
                index,
                seq: action.seq,
                add: action.action == ActionKind::Add,
                member,
            }),
            Err(why) => {
                log::error!(
                    "{} membership {}: {why}",
                    action.action.as_str(),
                    action.username
                );
                let at = now();
                store.journal_start(plan_id, action.seq, &at)?;
                store.journal_finish(plan_id, action.seq, Status::Failed, Some(&why), None, &at)?;
                bar.inc(1);
                outcomes.push((index, Status::Failed, Some(why)));
            }
        }
    }

    let max = target.max_member_changes().max(1);
    let requests: Vec<(String, Vec<MemberChange>)> = batches
        .into_iter()
        .flat_map(|(group, changes)| {
            let mut chunks = Vec::new();
            let mut rest = changes;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(max));
                chunks.push((group.clone(), std::mem::replace(&mut rest, tail)));
            }
            chunks
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let workers = concurrency.clamp(1, 64).min(requests.len().max(1));
    std::thread::scope(|scope| -> Result<(), ApplyError> {
        let mut handles = Vec::new();
        for _ in 0..workers {
            let journal = store.reopen()?;
            let (next, requests, results) = (&next, &requests, &results);
            handles.push(scope.spawn(move || -> Result<(), ApplyError> {
                while let Some((group, changes)) = requests.get(next.fetch_add(1, Ordering::SeqCst))
                {
                    let done = send(group, changes, target, &journal, plan_id, actions)?;
                    bar.inc(changes.len() as u64);
                    if let Ok(mut r) = results.lock() {
                        r.extend(done);
                    }
                }
                Ok(())
            }));
        }
        for handle in handles {
            match handle.join() {
                Ok(result) => result?,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(())
    })?;
    outcomes.extend(results.into_inner().unwrap_or_default());
    Ok(outcomes)
}

/// One request: journals its actions as started, sends it, journals how it ended.
fn send(
    group: &str,
    changes: &[MemberChange],
    target: &dyn Target,
    journal: &Store,
    plan_id: &str,
    actions: &[Action],
) -> Result<Vec<Outcome>, ApplyError> {
    let at = now();
    for c in changes {
        journal.journal_start(plan_id, c.seq, &at)?;
    }
    let (add, remove): (Vec<&MemberChange>, Vec<&MemberChange>) =
        changes.iter().partition(|c| c.add);
    let ids = |list: &[&MemberChange]| list.iter().map(|c| c.member.clone()).collect::<Vec<_>>();
    let result = target.change_members(group, &ids(&add), &ids(&remove));
    let (status, error) = match result {
        Ok(()) => (Status::Applied, None),
        Err(e) => {
            let names: Vec<&str> = changes
                .iter()
                .map(|c| actions[c.index].username.as_str())
                .collect();
            log::error!("membership changes of {}: {e}", names.join(", "));
            (Status::Failed, Some(e.to_string()))
        }
    };
    let at = now();
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        journal.journal_finish(plan_id, c.seq, status, error.as_deref(), None, &at)?;
        out.push((c.index, status, error.clone()));
    }
    Ok(out)
}

/// The ids that the plan's user and group adds created, as the journal has them.
struct CreatedIds<'a> {
    users: HashMap<&'a str, String>,
    groups: HashMap<&'a str, String>,
}

impl<'a> CreatedIds<'a> {
    fn from_journal(
        actions: &'a [Action],
        store: &Store,
        plan_id: &str,
    ) -> Result<Self, ApplyError> {
        let results: HashMap<u32, String> = store
            .journal(plan_id)?
            .into_iter()
            .filter_map(|e| Some((e.seq, e.result_id?)))
            .collect();
        let mut created = CreatedIds {
            users: HashMap::new(),
            groups: HashMap::new(),
        };
        for a in actions.iter().filter(|a| a.action == ActionKind::Add) {
            let Some(id) = results.get(&a.seq) else {
                continue;
            };
            match a.object {
                ObjectKind::User => created.users.insert(&a.key, id.clone()),
                ObjectKind::Group => created.groups.insert(&a.key, id.clone()),
                ObjectKind::Membership => None,
            };
        }
        Ok(created)
    }

    /// The group id and member id of a membership action, or why they are not known.
    fn resolve(&self, action: &Action) -> Result<(String, String), String> {
        let (group_key, user_key) = split_membership_key(&action.key).ok_or_else(|| {
            format!(
                "the membership key {:?} names no group and user",
                action.key
            )
        })?;
        let (group_name, member) = membership_parts(action);
        let group_name = group_name.unwrap_or(&group_key);
        let group = match &action.target_id {
            Some(id) => id.clone(),
            None => self
                .groups
                .get(group_key.as_str())
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "the group {group_name} was not created (its add failed or did not run)"
                    )
                })?,
        };
        let member = match member {
            Some(id) => id.to_string(),
            None => self.users.get(user_key.as_str()).cloned().ok_or_else(|| {
                format!(
                    "the user {} was not created (its add failed or did not run)",
                    action.username
                )
            })?,
        };
        Ok((group, member))
    }
}

#[cfg(test)]
mod tests {
    //! The membership step against a scripted target and a real (temporary) store: ids come
    //! from the journal, a failed user add fails its memberships, batches stay under the
    //! target's limit.

    use super::*;
    use crate::model::{DesiredUser, TargetGroup, TargetUser};
    use crate::plan::{Change, FORMAT_VERSION, Plan, Summary};
    use crate::planner::groups::membership_key;
    use crate::progress::Progress;
    use crate::target::{TargetError, UserUpdate};

    /// One `change_members` call: group id, ids added, ids removed.
    type MemberCall = (String, Vec<String>, Vec<String>);

    /// Creates users (all but `refuse`) and groups with predictable ids; records member calls.
    struct Scripted {
        refuse: &'static str,
        calls: Mutex<Vec<MemberCall>>,
    }

    impl Target for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn list_users(&self, _: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError> {
            Ok(0)
        }
        fn get_user(&self, _: &str) -> Result<Option<TargetUser>, TargetError> {
            Ok(None)
        }
        fn find_user(&self, _: &str) -> Result<Option<TargetUser>, TargetError> {
            Ok(None)
        }
        fn create_user(&self, user: &DesiredUser) -> Result<TargetUser, TargetError> {
            if user.username == self.refuse {
                return Err(TargetError::Http {
                    method: "POST".into(),
                    url: "/Users".into(),
                    status: 400,
                    scim_type: Some("invalidValue".into()),
                    detail: None,
                    retry_after: None,
                });
            }
            Ok(TargetUser {
                id: format!("id-{}", user.username),
                username: user.username.clone(),
                ..TargetUser::default()
            })
        }
        fn update_user(
            &self,
            _: &str,
            _: Option<&str>,
            _: &UserUpdate,
        ) -> Result<Option<String>, TargetError> {
            Ok(None)
        }
        fn delete_user(&self, _: &str, _: Option<&str>) -> Result<(), TargetError> {
            Ok(())
        }
        fn create_group(&self, key: &str, name: &str) -> Result<TargetGroup, TargetError> {
            Ok(TargetGroup {
                id: format!("gid-{name}"),
                external_id: Some(key.into()),
                name: name.into(),
                ..TargetGroup::default()
            })
        }
        fn change_members(
            &self,
            group: &str,
            add: &[String],
            remove: &[String],
        ) -> Result<(), TargetError> {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push((group.into(), add.to_vec(), remove.to_vec()));
            }
            Ok(())
        }
    }

    fn action(object: ObjectKind, kind: ActionKind, key: &str, name: &str) -> Action {
        Action {
            seq: 0,
            action: kind,
            object,
            key: key.into(),
            username: name.into(),
            status: Status::Planned,
            reason: String::new(),
            changes: Vec::new(),
            held_by: None,
            target_id: None,
            target_version: None,
            target_digest: None,
        }
    }

    /// A membership add of `user` to `group`, with the ids the plan knows.
    fn join(group: &str, user: &str, group_id: Option<&str>, user_id: Option<&str>) -> Action {
        let key = membership_key(&format!("k-{group}"), &format!("k-{user}"));
        let mut a = action(ObjectKind::Membership, ActionKind::Add, &key, user);
        a.changes.push(Change::new("group", None, Some(group)));
        if let Some(id) = user_id {
            a.changes.push(Change::new("member", None, Some(id)));
        }
        a.target_id = group_id.map(str::to_string);
        a
    }

    #[test]
    fn memberships_take_created_ids_from_the_journal_and_go_in_batches() {
        let user = |name: &str| {
            let mut a = action(
                ObjectKind::User,
                ActionKind::Add,
                &format!("k-{name}"),
                name,
            );
            a.changes.push(Change::new("username", None, Some(name)));
            a
        };
        let mut group = action(ObjectKind::Group, ActionKind::Add, "k-Sales", "Sales");
        group
            .changes
            .push(Change::new("displayName", None, Some("Sales")));
        let mut actions = vec![
            user("alice"),
            user("bob"),
            group,
            join("Sales", "alice", None, None),
            join("Sales", "bob", None, None),
            join("Sales", "carol", None, Some("id-carol")),
        ];
        for i in 0..150 {
            let id = format!("u{i:03}");
            actions.push(join("Big", &id, Some("gid-Big"), Some(&id)));
        }
        for (i, a) in actions.iter_mut().enumerate() {
            a.seq = i as u32 + 1;
        }
        let mut plan = Plan {
            format_version: FORMAT_VERSION,
            plan_id: "test-plan".into(),
            created_at: chrono::Utc::now(),
            summary: Summary::default(),
            actions,
            mode: crate::config::Mode::AddOnly,
            config_digest: String::new(),
            desired_digest: String::new(),
            forced: Vec::new(),
            target: "scripted".into(),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        store.save_plan(&plan, None).expect("save");
        let target = Scripted {
            refuse: "bob",
            calls: Mutex::new(Vec::new()),
        };

        let options = crate::apply::ApplyOptions {
            concurrency: 3,
            check_staleness: false,
        };
        let report =
            crate::apply::apply(&mut plan, &store, &target, options, &Progress::new(false))
                .expect("apply");

        assert_eq!((report.applied, report.failed), (154, 2), "{report:?}");
        let status = |user: &str| {
            plan.actions
                .iter()
                .find(|a| a.object == ObjectKind::Membership && a.username == user)
                .map(|a| (a.status, a.reason.clone()))
        };
        let (bob, why) = status("bob").expect("bob's membership");
        assert_eq!(bob, Status::Failed);
        assert!(
            why.contains("the user bob was not created (its add failed or did not run)"),
            "{why}"
        );
        let mut calls = target.calls.into_inner().expect("calls");
        calls.sort();
        let shape: Vec<(String, usize)> = calls
            .iter()
            .map(|(g, add, _)| (g.clone(), add.len()))
            .collect();
        assert_eq!(
            shape,
            [
                ("gid-Big".into(), 100),
                ("gid-Big".into(), 50),
                ("gid-Sales".into(), 2)
            ]
        );
        assert_eq!(
            calls[2].1,
            ["id-alice", "id-carol"],
            "alice's id is the one her add created"
        );
        let journal = store.journal("test-plan").expect("journal");
        assert!(
            journal
                .iter()
                .filter(|e| e.seq > 3)
                .all(|e| matches!(e.status, Status::Applied | Status::Failed)),
            "every membership is journaled with its outcome"
        );
    }
}
