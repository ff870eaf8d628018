//! Staleness: before a saved plan is applied, the target objects it touches are read again.
//! If any changed since the plan was made (another version, other content, gone, or an
//! account now holding a username the plan would create), the whole plan is refused and
//! nothing is applied: the reviewed plan no longer describes what apply would do.

use std::collections::{HashMap, HashSet};

use crate::model::TargetUser;
use crate::plan::{Action, ActionKind, ObjectKind, Subject};
use crate::target::{Target, TargetError};

/// Above this many objects to check, one paged listing of the target is cheaper than a
/// request per object.
const LIST_ABOVE: usize = 100;

/// One way in which the target moved on since the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub seq: u32,
    /// What the action touches, e.g. `user bob` or `group Sales`.
    pub object: String,
    pub what: String,
}

/// Checks `actions` (the ones still to apply) against the target as it is now.
/// Membership actions are not checked: adding a member twice or removing one already gone
/// changes nothing, and their groups and users are checked through their own actions.
/// `owned` (target id → key) is laid over the accounts read, for a target that keeps no key
/// of roster's (they were planned with it). `owner` is the config's: an account the target
/// now says another owner's is never changed.
pub fn check(
    actions: &[&Action],
    target: &dyn Target,
    owned: Option<&HashMap<String, String>>,
    owner: &str,
) -> Result<Vec<Drift>, TargetError> {
    let users: Vec<&Action> = actions
        .iter()
        .copied()
        .filter(|a| a.object() == ObjectKind::User)
        .collect();
    let claim = |mut user: TargetUser| {
        if let Some(owned) = owned {
            user.external_id = owned.get(&user.id).cloned();
        }
        user
    };
    let mut drift = if users.len() > LIST_ABOVE {
        check_by_listing(&users, target, &claim, owner)?
    } else {
        check_one_by_one(&users, target, &claim, owner)?
    };
    for action in actions {
        if let Subject::Group(group) = &action.subject {
            drift.extend(check_group(action, &group.key, &group.name, target)?);
        }
    }
    Ok(drift)
}

/// A group action's object as it is now: a group to add must still be absent, a group to
/// change or delete must still exist in the version planned.
fn check_group(
    action: &Action,
    key: &str,
    name: &str,
    target: &dyn Target,
) -> Result<Option<Drift>, TargetError> {
    let drift = |what: String| {
        Some(Drift {
            seq: action.seq,
            object: format!("group {name}"),
            what,
        })
    };
    Ok(match (action.action, &action.target_id) {
        (ActionKind::Add, _) => target
            .find_group(key, name)?
            .and_then(|g| drift(format!("a group named {} now exists (id {})", g.name, g.id))),
        (_, Some(id)) => match target.get_group(id)? {
            None => drift("the group no longer exists".to_string()),
            // Without versions, the content digest: a hand rename between plan and apply
            // must not be overwritten unseen.
            Some(group) => match (&action.target_version, &group.version) {
                (Some(planned), Some(current)) if planned != current => {
                    drift(format!("version {current} instead of {planned}"))
                }
                (Some(_), Some(_)) => None,
                _ if action
                    .target_digest
                    .as_deref()
                    .is_some_and(|d| d != group.digest()) =>
                {
                    drift(format!("its content changed (now named {})", group.name))
                }
                _ => None,
            },
        },
        (_, None) => None,
    })
}

type Claim<'a> = dyn Fn(TargetUser) -> TargetUser + 'a;

fn check_one_by_one(
    actions: &[&Action],
    target: &dyn Target,
    claim: &Claim<'_>,
    owner: &str,
) -> Result<Vec<Drift>, TargetError> {
    let mut drift = Vec::new();
    for action in actions {
        let now = match (action.action, &action.target_id) {
            (ActionKind::Add, _) => target.find_user(action.name())?,
            (_, Some(id)) => target.get_user(id)?.map(claim),
            (_, None) => None,
        };
        drift.extend(compare(action, now.as_ref(), owner));
    }
    Ok(drift)
}

fn check_by_listing(
    actions: &[&Action],
    target: &dyn Target,
    claim: &Claim<'_>,
    owner: &str,
) -> Result<Vec<Drift>, TargetError> {
    let ids: HashSet<&str> = actions
        .iter()
        .filter_map(|a| a.target_id.as_deref())
        .collect();
    let names: HashSet<String> = actions
        .iter()
        .filter(|a| a.action == ActionKind::Add)
        .map(|a| a.name().to_lowercase())
        .collect();
    let mut by_id: HashMap<String, TargetUser> = HashMap::new();
    let mut by_name: HashMap<String, TargetUser> = HashMap::new();
    target.list_users(&mut |user| {
        let folded = user.username.to_lowercase();
        if names.contains(&folded) {
            by_name.insert(folded, user.clone());
        }
        if ids.contains(user.id.as_str()) {
            by_id.insert(user.id.clone(), claim(user));
        }
    })?;
    Ok(actions
        .iter()
        .flat_map(|action| {
            let now = match (action.action, &action.target_id) {
                (ActionKind::Add, _) => by_name.get(&action.name().to_lowercase()),
                (_, Some(id)) => by_id.get(id),
                (_, None) => None,
            };
            compare(action, now, owner)
        })
        .collect())
}

/// How `now` differs from what `action` was planned against, if it does.
fn compare(action: &Action, now: Option<&TargetUser>, owner: &str) -> Option<Drift> {
    let drift = |what: String| {
        Some(Drift {
            seq: action.seq,
            object: format!("user {}", action.name()),
            what,
        })
    };
    match (action.action, now) {
        (ActionKind::Add, None) => None,
        (ActionKind::Add, Some(user)) => drift(format!(
            "an account with username {} now exists (id {})",
            user.username, user.id
        )),
        (_, None) => drift("the account no longer exists".to_string()),
        (
            _,
            Some(TargetUser {
                owner: Some(other), ..
            }),
        ) if other != owner => drift(format!(
            "it now belongs to owner {other:?} (its externalId says so): roster changes only its own owner's accounts"
        )),
        (_, Some(user)) if takes_away(action) && !owned(action, user) => {
            drift(match &user.external_id {
                None => {
                    "it carries no externalId: roster does not manage it, and never takes it away"
                        .to_string()
                }
                Some(other) => format!(
                    "its externalId is {other:?}, not the plan's {:?}: roster takes away only its own accounts",
                    action.subject.keys().0
                ),
            })
        }
        (_, Some(user)) => match (&action.target_version, &user.version) {
            (Some(planned), Some(current)) if planned != current => {
                drift(format!("version {current} instead of {planned}"))
            }
            (Some(_), Some(_)) => None,
            _ if action
                .target_digest
                .as_deref()
                .is_some_and(|d| d != user.digest()) =>
            {
                drift("its content changed".to_string())
            }
            _ => None,
        },
    }
}

/// A remove, a delete, or an update that takes an account out of service.
fn takes_away(action: &Action) -> bool {
    action.counts_as_removal()
}

/// The account is the one roster manages under the action's key.
fn owned(action: &Action, user: &TargetUser) -> bool {
    user.external_id.as_deref() == Some(action.subject.keys().0)
}

/// The refusal message: what changed, for the first few objects.
pub fn message(drift: &[Drift]) -> String {
    const SHOWN: usize = 10;
    let mut lines: Vec<String> = drift
        .iter()
        .take(SHOWN)
        .map(|d| format!("  action {} ({}): {}", d.seq, d.object, d.what))
        .collect();
    if drift.len() > SHOWN {
        lines.push(format!("  ... and {} more", drift.len() - SHOWN));
    }
    format!(
        "the plan is stale: {} of the target objects it touches changed since it was made; nothing was applied. \
         Make a new plan with `roster plan` and review it again.\n{}",
        drift.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::UserRef;

    fn action(kind: ActionKind, version: Option<&str>, digest: Option<&str>) -> Action {
        let user = UserRef {
            key: "k".into(),
            username: "alice".into(),
        };
        let mut action = Action::change_user(kind, user, Vec::new(), Vec::new());
        action.seq = 1;
        if kind != ActionKind::Add {
            action = action.on_target("t1", version, digest.map(Into::into));
        }
        action
    }

    fn user(version: Option<&str>) -> TargetUser {
        TargetUser {
            id: "t1".into(),
            username: "alice".into(),
            active: true,
            version: version.map(Into::into),
            ..TargetUser::default()
        }
    }

    #[test]
    fn drift_rules() {
        let same = user(Some("W/\"1\""));
        let digest = user(None).digest();
        let cases: Vec<(Action, Option<TargetUser>, bool)> = vec![
            (action(ActionKind::Add, None, None), None, false),
            (
                action(ActionKind::Add, None, None),
                Some(same.clone()),
                true,
            ),
            (
                action(ActionKind::Update, Some("W/\"1\""), None),
                Some(same.clone()),
                false,
            ),
            (
                action(ActionKind::Update, Some("W/\"1\""), None),
                Some(user(Some("W/\"2\""))),
                true,
            ),
            (
                action(ActionKind::Remove, Some("W/\"1\""), None),
                None,
                true,
            ),
            (
                action(ActionKind::Update, None, Some(&digest)),
                Some(user(None)),
                false,
            ),
            (
                action(ActionKind::Update, None, Some(&digest)),
                Some(TargetUser {
                    name: Some("x".into()),
                    ..user(None)
                }),
                true,
            ),
            // The target now says the account is another owner's: never changed.
            (
                action(ActionKind::Update, Some("W/\"1\""), None),
                Some(TargetUser {
                    owner: Some("contractors".into()),
                    ..same.clone()
                }),
                true,
            ),
            (
                action(ActionKind::Update, Some("W/\"1\""), None),
                Some(TargetUser {
                    owner: Some("employees".into()),
                    ..same.clone()
                }),
                false,
            ),
        ];
        for (i, (a, now, stale)) in cases.into_iter().enumerate() {
            assert_eq!(
                compare(&a, now.as_ref(), "employees").is_some(),
                stale,
                "case {i}"
            );
        }
    }

    #[test]
    fn the_message_names_what_changed_and_says_stale() {
        let drift = vec![Drift {
            seq: 3,
            object: "user bob".into(),
            what: "the account no longer exists".into(),
        }];
        let m = message(&drift);
        assert!(m.starts_with("the plan is stale"), "{m}");
        assert!(
            m.contains("action 3 (user bob): the account no longer exists"),
            "{m}"
        );
    }

    /// A target holding one group, without versions.
    struct OneGroup(crate::model::TargetGroup);

    impl Target for OneGroup {
        fn describe(&self) -> String {
            "one group".into()
        }
        fn capabilities(&self) -> crate::model::Capabilities {
            crate::model::Capabilities::SCIM
        }
        fn remove_user(&self, _: &str, _: Option<&str>) -> Result<(), TargetError> {
            Err(TargetError::Setup("not here".into()))
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
        fn create_user(&self, _: &crate::model::DesiredUser) -> Result<TargetUser, TargetError> {
            Err(TargetError::Setup("not here".into()))
        }
        fn update_user(
            &self,
            _: &str,
            _: Option<&str>,
            _: &crate::target::UserUpdate,
        ) -> Result<Option<String>, TargetError> {
            Err(TargetError::Setup("not here".into()))
        }
        fn delete_user(&self, _: &str, _: Option<&str>) -> Result<(), TargetError> {
            Ok(())
        }
        fn get_group(&self, id: &str) -> Result<Option<crate::model::TargetGroup>, TargetError> {
            Ok((self.0.id == id).then(|| self.0.clone()))
        }
    }

    #[test]
    fn a_group_without_versions_is_checked_by_its_content() {
        let planned = crate::model::TargetGroup {
            id: "g1".into(),
            external_id: Some("k".into()),
            name: "Sales".into(),
            members: vec!["u1".into()],
            version: None,
        };
        let mut action = Action::new(
            ActionKind::Delete,
            Subject::group("k", "Sales"),
            Vec::new(),
            Vec::new(),
        )
        .on_target("g1", None, Some(planned.digest()));
        action.seq = 4;
        let unchanged = OneGroup(crate::model::TargetGroup {
            members: Vec::new(),
            ..planned.clone()
        });
        assert_eq!(
            check(&[&action], &unchanged, None, "roster").expect("check"),
            []
        );
        let renamed = OneGroup(crate::model::TargetGroup {
            name: "Sales (by hand)".into(),
            ..planned
        });
        let drift = check(&[&action], &renamed, None, "roster").expect("check");
        assert_eq!(drift.len(), 1);
        assert!(drift[0].what.contains("content changed"), "{drift:?}");
    }
}
