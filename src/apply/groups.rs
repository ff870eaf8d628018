//! Applying group and membership actions.
//!
//! Group actions (add, rename/adopt, delete) run with the user actions, one target call
//! each. Membership actions run after all of those have finished, for two reasons:
//! - **Dependencies.** A membership names a user and a group by target id, and when the
//!   user or the group is created by the same plan, the plan cannot know that id. The add
//!   that creates it journals the id (`result_id`); the membership takes it from the journal
//!   (the add of the same key in the same plan). If that add failed or is still held, the
//!   membership fails with a message that says so, and a later apply of the plan retries it.
//!   The same holds for an existing group the plan adopts (an update that sets its key):
//!   until the adoption is applied the group is not roster's, so its memberships fail with
//!   it and nothing is sent for them.
//! - **Batching.** Member changes go to the target in requests of at most
//!   `Target::max_member_changes` (100 for SCIM), one group per request; each action is
//!   journaled before and after the request that carries it, so a killed apply resumes
//!   without losing track (re-adding a member or re-removing one is harmless).

use std::collections::{BTreeMap, HashMap};

use super::create::{Creation, create_or_adopt};
use super::journal::{Finish, Journal};
use super::workers::{Run, in_parallel};
use super::{ActionError, ApplyError, Outcome, now};
use crate::model::TargetGroup;
use crate::plan::{Action, ActionKind, ActionStatus, Field, ObjectKind, Subject};
use crate::store::Store;
use crate::target::{GroupUpdate, Target, TargetError};

/// Splits the actions to do into the membership actions and the rest.
pub(super) fn split_memberships(todo: Vec<usize>, actions: &[Action]) -> (Vec<usize>, Vec<usize>) {
    todo.into_iter()
        .partition(|&i| actions[i].object() != ObjectKind::Membership)
}

/// One group action's target call. Returns the id a group add created or adopted.
pub(super) fn execute(
    action: &Action,
    target: &dyn Target,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    let id = || action.target_id.as_deref().ok_or(ActionError::NoTargetId);
    let version = action.target_version.as_deref();
    let Subject::Group(group) = &action.subject else {
        return Err(ActionError::NotHere(format!(
            "{} {} actions are applied with the memberships",
            action.action.as_str(),
            action.object().as_str()
        )));
    };
    match action.action {
        ActionKind::Add => {
            let creation = NewGroup {
                key: &group.key,
                name: action.after(&Field::GroupName).unwrap_or(&group.name),
            };
            create_or_adopt(&creation, target, interrupted)
        }
        ActionKind::Update => {
            target.update_group(id()?, version, &group_update(action))?;
            Ok(None)
        }
        ActionKind::Remove | ActionKind::Delete => {
            target.delete_group(id()?, version)?;
            Ok(None)
        }
    }
}

/// A group an add creates.
struct NewGroup<'a> {
    key: &'a str,
    name: &'a str,
}

impl Creation for NewGroup<'_> {
    type Existing = TargetGroup;

    fn find(&self, target: &dyn Target) -> Result<Option<TargetGroup>, TargetError> {
        target.find_group(self.key, self.name)
    }

    fn create(&self, target: &dyn Target) -> Result<String, TargetError> {
        target
            .create_group(self.key, self.name)
            .map(|created| created.id)
    }

    fn adopt(&self, existing: TargetGroup, target: &dyn Target) -> Result<String, ActionError> {
        let name = self.name;
        if let Some(key) = existing.external_id.as_deref()
            && key != self.key
        {
            return Err(ActionError::GroupTaken {
                name: name.to_string(),
                key: key.to_string(),
            });
        }
        let update = GroupUpdate {
            external_id: existing.external_id.is_none().then(|| self.key.to_string()),
            name: (existing.name != name).then(|| name.to_string()),
        };
        if update != GroupUpdate::default() {
            target.update_group(&existing.id, existing.version.as_deref(), &update)?;
        }
        log::info!(
            "add group {name}: adopted the existing group {}",
            existing.id
        );
        Ok(existing.id)
    }
}

fn group_update(action: &Action) -> GroupUpdate {
    GroupUpdate {
        external_id: action.after(&Field::Key).map(str::to_string),
        name: action.after(&Field::GroupName).map(str::to_string),
    }
}

/// One membership, ready to send: which group, which member, which way.
struct MemberChange {
    index: usize,
    seq: u32,
    add: bool,
    member: String,
}

/// Applies the membership actions `todo` (indices into the plan), after every other
/// action of the plan has run: resolves ids from the plan and the journal, then sends the
/// changes per group in batches, `concurrency` groups at a time.
pub(super) fn apply_memberships(
    run: &Run<'_>,
    store: &Store,
    todo: &[usize],
) -> Result<Vec<Outcome>, ApplyError> {
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let (actions, plan_id) = (run.actions, run.plan_id);
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
                    action.name()
                );
                let at = now();
                store.journal_start(plan_id, action.seq, &at)?;
                store.journal_finish(
                    plan_id,
                    action.seq,
                    ActionStatus::Failed,
                    Some(&why),
                    None,
                    &at,
                )?;
                run.bar.inc(1);
                outcomes.push(Outcome {
                    index,
                    error: Some(why),
                    staged: None,
                });
            }
        }
    }

    let max = run.target.max_member_changes().max(1);
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
    let seqs = |(_, changes): &(String, Vec<MemberChange>)| {
        changes.iter().map(|c| c.seq).collect::<Vec<_>>()
    };
    let sent = in_parallel(&requests, seqs, run, store, |(group, changes), worker| {
        let done = send(group, changes, run, worker.journal);
        run.bar.inc(changes.len() as u64);
        Ok(done)
    })?;
    outcomes.extend(sent);
    Ok(outcomes)
}

/// One request (its actions journaled as started before `in_parallel` hands it over): sends
/// it, and journals how it ended.
fn send(
    group: &str,
    changes: &[MemberChange],
    run: &Run<'_>,
    journal: &Journal<'_>,
) -> Vec<Outcome> {
    let (add, remove): (Vec<&MemberChange>, Vec<&MemberChange>) =
        changes.iter().partition(|c| c.add);
    let ids = |list: &[&MemberChange]| list.iter().map(|c| c.member.clone()).collect::<Vec<_>>();
    let result = run.target.change_members(group, &ids(&add), &ids(&remove));
    let (status, error) = match result {
        Ok(()) => (ActionStatus::Applied, None),
        Err(e) => {
            let names: Vec<&str> = changes
                .iter()
                .map(|c| run.actions[c.index].name())
                .collect();
            log::error!("membership changes of {}: {e}", names.join(", "));
            (ActionStatus::Failed, Some(e.to_string()))
        }
    };
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let finish = Finish {
            seq: c.seq,
            status,
            error: error.clone(),
            result_id: None,
        };
        journal.finish(finish, Vec::new());
        out.push(Outcome {
            index: c.index,
            error: error.clone(),
            staged: None,
        });
    }
    out
}

/// The ids that the plan's user and group adds created, as the journal has them, and the
/// adoptions of existing groups that did not go through.
struct CreatedIds<'a> {
    users: HashMap<&'a str, String>,
    groups: HashMap<&'a str, String>,
    /// Group key → the journal status of its adoption (an update that sets the key), for
    /// adoptions not applied: until it is roster's, a group's members are not roster's to edit.
    unadopted: HashMap<&'a str, ActionStatus>,
}

impl<'a> CreatedIds<'a> {
    fn from_journal(
        actions: &'a [Action],
        store: &Store,
        plan_id: &str,
    ) -> Result<Self, ApplyError> {
        let journal = store.journal(plan_id)?;
        let statuses: HashMap<u32, ActionStatus> =
            journal.iter().map(|e| (e.seq, e.status)).collect();
        let results: HashMap<u32, String> = journal
            .into_iter()
            .filter_map(|e| Some((e.seq, e.result_id?)))
            .collect();
        let mut created = CreatedIds {
            users: HashMap::new(),
            groups: HashMap::new(),
            unadopted: HashMap::new(),
        };
        for a in actions.iter().filter(|a| is_adoption(a)) {
            let status = statuses.get(&a.seq).copied().unwrap_or(a.status);
            if let (Subject::Group(group), false) = (&a.subject, status == ActionStatus::Applied) {
                created.unadopted.insert(&group.key, status);
            }
        }
        for a in actions.iter().filter(|a| a.action == ActionKind::Add) {
            let Some(id) = results.get(&a.seq) else {
                continue;
            };
            match &a.subject {
                Subject::User(user) => created.users.insert(&user.key, id.clone()),
                Subject::Group(group) => created.groups.insert(&group.key, id.clone()),
                Subject::Membership(_) => None,
            };
        }
        Ok(created)
    }

    /// The group id and member id of a membership action, or why they are not known.
    fn resolve(&self, action: &Action) -> Result<(String, String), String> {
        let Some((group, user)) = action.subject.member() else {
            return Err(format!("{} is not a membership", action.name()));
        };
        if let Some(status) = self.unadopted.get(group.key.as_str()) {
            let what = match status {
                ActionStatus::Failed => "failed",
                ActionStatus::Held => "is held",
                _ => "did not run",
            };
            return Err(format!(
                "the group {} was not adopted (its adoption {what}): roster changes no members \
                 of a group it does not manage",
                group.name
            ));
        }
        let group_id = match &action.target_id {
            Some(id) => id.clone(),
            None => self
                .groups
                .get(group.key.as_str())
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "the group {} was not created (its add failed or did not run)",
                        group.name
                    )
                })?,
        };
        let member = action
            .change(&Field::Member)
            .and_then(|c| c.after.as_deref().or(c.before.as_deref()));
        let member = match member {
            Some(id) => id.to_string(),
            None => self.users.get(user.key.as_str()).cloned().ok_or_else(|| {
                format!(
                    "the user {} was not created (its add failed or did not run)",
                    user.username
                )
            })?,
        };
        Ok((group_id, member))
    }
}

/// A group update that makes an existing group roster's (sets its key).
fn is_adoption(action: &Action) -> bool {
    action.object() == ObjectKind::Group
        && action.action == ActionKind::Update
        && action
            .change(&Field::Key)
            .is_some_and(|c| c.after.is_some())
}

#[cfg(test)]
pub(super) mod tests {
    //! The membership step against a scripted target and a real (temporary) store: ids come
    //! from the journal, a failed user add fails its memberships, batches stay under the
    //! target's limit.

    use std::sync::Mutex;

    use super::*;
    use crate::model::{DesiredUser, TargetUser};
    use crate::plan::{
        ActionStatus as Status, Change, FORMAT_VERSION, GroupRef, Plan, Reason, Summary, UserRef,
    };
    use crate::progress::Progress;
    use crate::target::{TargetError, UserUpdate};

    /// One `change_members` call: group id, ids added, ids removed.
    type MemberCall = (String, Vec<String>, Vec<String>);

    /// Creates users (all but `refuse`) and groups with predictable ids; records member calls.
    struct Scripted {
        refuse: &'static str,
        /// A group name whose create is refused.
        refuse_group: &'static str,
        calls: Mutex<Vec<MemberCall>>,
    }

    impl Target for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn capabilities(&self) -> crate::model::Capabilities {
            crate::model::Capabilities::SCIM
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
                    code: Some("invalidValue".into()),
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
        fn remove_user(&self, _: &str, _: Option<&str>) -> Result<(), TargetError> {
            Ok(())
        }
        fn delete_user(&self, _: &str, _: Option<&str>) -> Result<(), TargetError> {
            Ok(())
        }
        fn create_group(&self, key: &str, name: &str) -> Result<TargetGroup, TargetError> {
            if name == self.refuse_group {
                return Err(TargetError::Http {
                    method: "POST".into(),
                    url: "/Groups".into(),
                    status: 400,
                    code: Some("invalidValue".into()),
                    detail: None,
                    retry_after: None,
                });
            }
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

    /// A membership add of `user` to `group`, with the ids the plan knows.
    fn join(group: &str, user: &str, group_id: Option<&str>, user_id: Option<&str>) -> Action {
        let mut changes = vec![Change::new(Field::Group, None, Some(group))];
        if let Some(id) = user_id {
            changes.push(Change::new(Field::Member, None, Some(id)));
        }
        let group = GroupRef {
            key: format!("k-{group}"),
            name: group.into(),
        };
        let user = UserRef {
            key: format!("k-{user}"),
            username: user.into(),
        };
        let mut a = Action::membership(ActionKind::Add, group, user, Reason::NotInTarget, changes);
        a.reasons.clear();
        a.target_id = group_id.map(str::to_string);
        a
    }

    #[test]
    fn memberships_take_created_ids_from_the_journal_and_go_in_batches() {
        let user = |name: &str| {
            let changes = vec![Change::new(Field::Username, None, Some(name))];
            Action::add_user(&format!("k-{name}"), name, Vec::new(), changes)
        };
        let mut group = Action::add_group("k-Sales", "Sales", Reason::NotInTarget);
        group.changes.retain(|c| c.field == Field::GroupName);
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
        let mut plan = scripted_plan("test-plan", actions);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        store
            .save_plan(&plan, None, &crate::plan::seal::seal(&plan, None).digest)
            .expect("save");
        let target = Scripted {
            refuse: "bob",
            refuse_group: "",
            calls: Mutex::new(Vec::new()),
        };

        let options = crate::apply::ApplyOptions {
            concurrency: 3,
            check_staleness: false,
            owner: "test",
            kept_key: None,
        };
        let report =
            crate::apply::apply(&mut plan, &store, &target, options, &Progress::new(false))
                .expect("apply");

        assert_eq!((report.applied, report.failed), (154, 2), "{report:?}");
        let status = |user: &str| {
            plan.actions
                .iter()
                .find(|a| a.object() == ObjectKind::Membership && a.name() == user)
                .map(|a| (a.status, a.reason()))
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

    /// A plan of `actions`, numbered in order, for the scripted target.
    pub(in crate::apply) fn scripted_plan(plan_id: &str, mut actions: Vec<Action>) -> Plan {
        for (i, a) in actions.iter_mut().enumerate() {
            a.seq = i as u32 + 1;
        }
        Plan {
            format_version: FORMAT_VERSION,
            plan_id: plan_id.into(),
            created_at: chrono::Utc::now(),
            summary: Summary::default(),
            actions,
            stored: None,
            mode: crate::config::Mode::AddOnly,
            config_digest: String::new(),
            desired_digest: String::new(),
            forced: Vec::new(),
            notes: Vec::new(),
            remove_means: None,
            delete_means: None,
            target: "scripted".into(),
            max_removes: None,
            managed: None,
            target_accounts: None,
            initial: false,
        }
    }

    /// Applies `actions` (numbered here) as one plan against `target`.
    fn apply_all(actions: Vec<Action>, target: &Scripted) -> (Plan, crate::apply::ApplyReport) {
        let mut plan = scripted_plan("dependent-plan", actions);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        store
            .save_plan(&plan, None, &crate::plan::seal::seal(&plan, None).digest)
            .expect("save");
        let options = crate::apply::ApplyOptions {
            concurrency: 2,
            check_staleness: false,
            owner: "test",
            kept_key: None,
        };
        let report = crate::apply::apply(&mut plan, &store, target, options, &Progress::new(false))
            .expect("apply");
        (plan, report)
    }

    /// A group whose create or adoption failed is not roster's: the memberships that depend
    /// on it fail with it, and nothing is sent for them.
    #[test]
    fn memberships_fail_with_their_groups_create_or_adoption() {
        let mut broken = Action::add_group("k-Broken", "Broken", Reason::NotInTarget);
        broken.changes.retain(|c| c.field == Field::GroupName);
        // Adopting an existing group: the scripted target refuses every group update.
        let adopt = Action::new(
            ActionKind::Update,
            crate::plan::Subject::group("k-Found", "Found"),
            vec![Reason::AdoptedGroup],
            vec![Change::new(Field::Key, None, Some("k-Found"))],
        )
        .on_target("gid-Found", None, None);
        let actions = vec![
            broken,
            adopt,
            join("Broken", "carol", None, Some("id-carol")),
            join("Found", "carol", Some("gid-Found"), Some("id-carol")),
            join("Managed", "carol", Some("gid-Managed"), Some("id-carol")),
        ];
        let target = Scripted {
            refuse: "",
            refuse_group: "Broken",
            calls: Mutex::new(Vec::new()),
        };
        let (plan, report) = apply_all(actions, &target);
        assert_eq!((report.applied, report.failed), (1, 4), "{report:?}");
        let membership = |group: &str| {
            plan.actions
                .iter()
                .find(|a| a.object() == ObjectKind::Membership && a.subject.keys().0 == group)
                .map(|a| (a.status, a.reason()))
                .expect("membership")
        };
        let (status, why) = membership("k-Broken");
        assert_eq!(status, Status::Failed);
        assert!(why.contains("the group Broken was not created"), "{why}");
        let (status, why) = membership("k-Found");
        assert_eq!(status, Status::Failed);
        assert!(
            why.contains("the group Found was not adopted (its adoption failed)"),
            "{why}"
        );
        assert_eq!(membership("k-Managed").0, Status::Applied);
        let calls = target.calls.into_inner().expect("calls");
        assert_eq!(
            calls,
            [(
                "gid-Managed".to_string(),
                vec!["id-carol".to_string()],
                Vec::new()
            )],
            "nothing sent for the memberships of groups roster does not hold"
        );
    }
}
