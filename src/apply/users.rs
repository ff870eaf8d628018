//! Applying user actions: the target calls of an add, update, remove or delete, and what
//! roster records about deactivations it made.
//!
//! The user an add creates and the update an action asks for are rebuilt from the action's
//! changes (`desired_of`, `update_of`), field by field: everything apply needs is in the
//! plan, so a plan read back from a file or the store applies the same way.
//!
//! Every account an add creates or adopts, and every account an update adopts (its key
//! set), is recorded as the config owner's (`Record::Owned`, committed with the action's
//! finish by the journal writer); on a target without externalIds those records are the
//! only thing that makes an account roster's.

use std::cell::Cell;

use super::ActionError;
use super::create::{Creation, create_or_adopt};
use super::journal::Record;
use super::workers::Run;
use crate::model::{DesiredUser, FieldValue, TargetUser};
use crate::plan::{Action, ActionKind, Field};
use crate::store::Store;
use crate::target::{Target, TargetError, UserUpdate};

/// One user action's target calls. Returns the target id an add created or adopted.
pub(super) fn execute(
    action: &Action,
    run: &Run<'_>,
    store: &Store,
    records: &mut Vec<Record>,
    interrupted: bool,
) -> Result<Option<String>, ActionError> {
    let target = run.target;
    let id = || action.target_id.as_deref().ok_or(ActionError::NoTargetId);
    let version = action.target_version.as_deref();
    match action.action {
        ActionKind::Add => add(action, run, store, records, interrupted, None),
        ActionKind::Update => {
            let update = update_of(action);
            let id = id()?;
            target.update_user(id, version, &update)?;
            // An adoption (the key set): the account is this owner's from now on.
            if let Some(key) = &update.external_id {
                records.push(owned(id, key));
            }
            match update.active {
                Some(true) => records.push(Record::ForgetDeactivated {
                    target_id: id.to_string(),
                }),
                // The source has the account out of service: roster deactivated it, and
                // reactivates it when the source has it in service again.
                Some(false) => records.push(deactivated(id, key(action))),
                None => {}
            }
            Ok(None)
        }
        ActionKind::Remove => {
            let id = id()?;
            target.remove_user(id, version)?;
            // An account kept inactive is reactivated when it returns; one taken out of a
            // LoginTC domain simply joins it again with the add of its return.
            if target.capabilities().active_flag {
                records.push(deactivated(id, key(action)));
            }
            Ok(None)
        }
        ActionKind::Delete => {
            let id = id()?;
            target.delete_user(id, version)?;
            records.push(Record::ForgetDeactivated {
                target_id: id.to_string(),
            });
            records.push(Record::ForgetOwned {
                target_id: id.to_string(),
            });
            Ok(None)
        }
    }
}

/// An add: create → (conflict) → find → adopt, and the records of what it made. `answered`
/// is the answer to a create already sent for it (in a Bulk request, `apply/bulk.rs`), which
/// is then taken as the create's answer instead of sending one.
pub(super) fn add(
    action: &Action,
    run: &Run<'_>,
    store: &Store,
    records: &mut Vec<Record>,
    interrupted: bool,
    answered: Option<Result<String, TargetError>>,
) -> Result<Option<String>, ActionError> {
    let (target, owner) = (run.target, run.owner);
    let creation = NewUser {
        action,
        user: desired_of(action),
        store,
        owner,
        by_records: !target.capabilities().external_ids,
        owner_on_target: target.capabilities().owner_on_target,
        answered: Cell::new(answered),
    };
    let created = create_or_adopt(&creation, target, interrupted)?;
    if let Some(id) = &created {
        records.push(owned(id, key(action)));
    }
    // Created inactive (out of service in the source): roster's own deactivation,
    // undone when the source has the account in service again.
    if !creation.user.active
        && let Some(id) = &created
    {
        records.push(deactivated(id, key(action)));
    }
    Ok(created)
}

/// The account `target_id` is the config owner's, under `key`.
fn owned(target_id: &str, key: &str) -> Record {
    Record::Owned {
        target_id: target_id.to_string(),
        key: key.to_string(),
    }
}

/// roster took the account `target_id` out of service.
fn deactivated(target_id: &str, key: &str) -> Record {
    Record::Deactivated {
        target_id: target_id.to_string(),
        key: key.to_string(),
    }
}

/// The key of the user an action is about.
fn key(action: &Action) -> &str {
    action.subject.keys().0
}

/// A user an add creates.
struct NewUser<'a> {
    action: &'a Action,
    user: DesiredUser,
    store: &'a Store,
    owner: &'a str,
    /// The target keeps no key of roster's: ownership is in the store's records.
    by_records: bool,
    /// The target keeps the owner with each account (SCIM): another owner's is never taken,
    /// and one adopted without an owner gets this one.
    owner_on_target: bool,
    /// The answer to a create already sent (Bulk): `create` takes it instead of sending one.
    answered: Cell<Option<Result<String, TargetError>>>,
}

impl Creation for NewUser<'_> {
    type Existing = TargetUser;

    fn find(&self, target: &dyn Target) -> Result<Option<TargetUser>, TargetError> {
        target.find_user(&self.user.username)
    }

    fn create(&self, target: &dyn Target) -> Result<String, TargetError> {
        match self.answered.take() {
            Some(answer) => answer,
            None => target.create_user(&self.user).map(|created| created.id),
        }
    }

    fn adopt(&self, mut existing: TargetUser, target: &dyn Target) -> Result<String, ActionError> {
        let name = self.action.name();
        if self.by_records {
            // What the target cannot say, the records do: whose account this is.
            if let Some(other) = self.store.other_owner(self.owner, &existing.id)? {
                return Err(ActionError::Taken {
                    username: self.user.username.clone(),
                    key: format!("owner \"{other}\""),
                });
            }
            existing.external_id = self.store.owned(self.owner)?.remove(&existing.id);
        }
        let needs_owner = self.owner_on_target && existing.owner.as_deref() != Some(self.owner);
        if let Some(other) = existing.owner.as_deref().filter(|_| needs_owner) {
            return Err(ActionError::Taken {
                username: self.user.username.clone(),
                key: format!("owner \"{other}\""),
            });
        }
        match existing.external_id.as_deref() {
            Some(key) if key != self.user.key => {
                return Err(ActionError::Taken {
                    username: self.user.username.clone(),
                    key: key.to_string(),
                });
            }
            Some(_) => log::info!("add {name}: already created (resumed apply)"),
            None => log::info!("add {name}: adopting the existing unmanaged account"),
        }
        let mut update = update_of(self.action);
        update.username = None;
        if existing.external_id.is_some() && !needs_owner {
            update.external_id = None;
        }
        if !update.is_empty() {
            target.update_user(&existing.id, existing.version.as_deref(), &update)?;
        }
        Ok(existing.id)
    }
}

/// The user an add action creates, rebuilt from its changes.
pub(super) fn desired_of(action: &Action) -> DesiredUser {
    let mut user = DesiredUser {
        key: key(action).to_string(),
        username: action.name().to_string(),
        ..DesiredUser::default()
    };
    for c in &action.changes {
        let Some(after) = c.after.as_deref().map(String::from) else {
            continue;
        };
        match &c.field {
            Field::Key => user.key = after,
            Field::Username => user.username = after,
            Field::Name => user.name = Some(after),
            Field::Email => user.email = Some(after),
            Field::Phone => user.phones.push(after),
            Field::Active => user.active = after != "false",
            // The connector writes the owner with every key it creates.
            Field::Owner => {}
            Field::Attribute(name) => {
                user.fields.insert(name.clone(), FieldValue::Set(after));
            }
            // Group fields: never on a user action (the contract does not read them so).
            Field::GroupName | Field::Group | Field::Member => {}
        }
    }
    user
}

/// The target update an action's changes ask for.
fn update_of(action: &Action) -> UserUpdate {
    let mut update = UserUpdate::default();
    for c in &action.changes {
        let after = c.after.as_deref().map(String::from);
        match &c.field {
            Field::Key => update.external_id = after,
            Field::Username => update.username = after,
            Field::Name => update.name = after,
            Field::Email => update.email = after,
            Field::Phone => update.add_phones.extend(after),
            Field::Active => update.active = after.map(|a| a == "true"),
            // The owner travels with the key: the connector writes it with the externalId.
            Field::Owner => {
                update
                    .external_id
                    .get_or_insert_with(|| key(action).to_string());
            }
            Field::Attribute(name) => {
                let value = after.map_or(FieldValue::Clear, FieldValue::Set);
                update.fields.insert(name.clone(), value);
            }
            Field::GroupName | Field::Group | Field::Member => {}
        }
    }
    update
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Change, UserRef};

    #[test]
    fn an_action_gives_back_the_user_and_the_update_it_was_planned_from() {
        let changes = vec![
            Change::new(Field::Key, None, Some("k-1")),
            Change::new(Field::Username, None, Some("alice")),
            Change::new(Field::Name, None, Some("Alice")),
            Change::new(Field::Phone, None, Some("+1 555")),
            Change::new(Field::Active, None, Some("false")),
            Change::new(Field::Attribute("title".into()), None, Some("CTO")),
        ];
        let add = Action::add_user("k-1", "alice", Vec::new(), changes);
        let user = desired_of(&add);
        assert_eq!(
            (
                user.key.as_str(),
                user.username.as_str(),
                user.name.as_deref()
            ),
            ("k-1", "alice", Some("Alice"))
        );
        assert_eq!((user.phones.len(), user.active), (1, false));
        assert_eq!(
            user.fields.get("title"),
            Some(&FieldValue::Set("CTO".into()))
        );

        let user_ref = UserRef {
            key: "k-1".into(),
            username: "alice".into(),
        };
        let changes = vec![
            Change::new(Field::Email, Some("a@old"), Some("a@new")),
            Change::new(Field::Active, Some("false"), Some("true")),
            Change::new(Field::Attribute("title".into()), Some("CTO"), None),
        ];
        let update = update_of(&Action::change_user(
            ActionKind::Update,
            user_ref,
            Vec::new(),
            changes,
        ));
        assert_eq!(update.email.as_deref(), Some("a@new"));
        assert_eq!(update.active, Some(true));
        assert_eq!(update.fields.get("title"), Some(&FieldValue::Clear));
    }
}
