//! The plan: what roster intends to do to the target, action by action, and why.
//!
//! This is the plan as the code reasons about it: closed enums for what an action does
//! (`ActionKind`), to what (`Subject`), which fields it touches (`Field`), why it exists
//! (`Reason`), what holds it (`Hold`) and where it stands (`ActionStatus`). Nothing here
//! knows how a plan is written down: the plan file, `--format json` and the store's rows are
//! the contract's business (`contract.rs`), converted by hand both ways, as Terraform keeps
//! its plan file apart from its plan model. The reasons exist to explain the plan to people
//! and never steer apply.

use crate::config::Mode;

pub mod contract;
mod reason;
pub mod seal;
pub mod shared;
pub mod sink;

pub use reason::{CapName, Counted, Hold, Limit, Missing, Reason};

/// Version of the plan file format. Apply refuses files of another version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub format_version: u32,
    pub plan_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub summary: Summary,
    /// The actions, when the plan holds them in memory (a plan read from a file or the
    /// store, a test's plan); empty when `stored` has them.
    pub actions: Vec<Action>,
    /// The actions of a plan just made, kept in the state store rather than in memory
    /// (issue 16): read them with `each_action`, count them with `count_where`.
    pub stored: Option<Stored>,
    /// The sync mode the plan was made in.
    pub mode: Mode,
    /// sha256 of the config and policy text the plan was made with.
    pub config_digest: String,
    /// sha256 of the mapped source (desired state) the plan was made from.
    pub desired_digest: String,
    /// Safety checks that `--force` overrode for this plan, in words.
    pub forced: Vec<String>,
    /// What the plan's reader should know that no action shows (why nothing is removed).
    pub notes: Vec<String>,
    /// What a remove and a delete mean on this target, in its words, when it has its own
    /// ("leaves domain Office VPN, token revoked").
    pub remove_means: Option<String>,
    pub delete_means: Option<String>,
    /// The target the plan is for (its URL), so a plan is not applied elsewhere by mistake.
    pub target: String,
    /// `--max-removes` when the plan was made with it: with `mode`, the part of the policy
    /// in force that came from the command line (apply re-checks the plan against it).
    pub max_removes: Option<u64>,
    /// The managed accounts the percent caps were measured against, recorded when the
    /// policy has a percent cap, so that apply can check those caps again from the plan alone.
    pub managed: Option<u64>,
    /// Every account in the target (managed or not), the base of a percent `max-adds`;
    /// recorded with `managed`.
    pub target_accounts: Option<u64>,
    /// Made with `--initial`: a first load into a target with no account of this owner, so
    /// no cap counts its adds (apply re-checks it the same way).
    pub initial: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub add: u64,
    pub update: u64,
    pub remove: u64,
    pub delete: u64,
    /// Actions of any kind held by a cap (also counted under their kind).
    pub held: u64,
    /// Users present on both sides with nothing to change.
    pub unchanged: u64,
    /// Source records not used (see `roster show`).
    pub rejected: u64,
    /// Target accounts without an externalId: never touched, only counted.
    pub unmanaged: u64,
    /// Changes not planned because a rule forbids them (e.g. an inactive target account).
    pub skipped: u64,
    /// Source group members that are not synced users (group sync only): ignored, counted.
    pub ignored_members: u64,
}

impl Summary {
    /// Anything for apply to do (held actions count: they are changes waiting for a human).
    pub fn has_changes(&self) -> bool {
        self.add + self.update + self.remove + self.delete > 0
    }
}

/// A user as an action names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UserRef {
    /// The source key (the target's externalId); empty for a membership of a user that has
    /// none.
    pub key: String,
    pub username: String,
}

/// A group as an action names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupRef {
    pub key: String,
    /// The name the group has (or gets) in the target.
    pub name: String,
}

/// What an action is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(UserRef),
    Group(GroupRef),
    /// One user's membership of one group. Boxed: it names two objects where the others
    /// name one, and every action of a plan (a million adds) would carry its size.
    Membership(Box<MemberRef>),
}

/// The group and the user of a membership.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberRef {
    pub group: GroupRef,
    pub user: UserRef,
}

impl Subject {
    pub fn user(key: &str, username: &str) -> Subject {
        Subject::User(UserRef {
            key: key.to_string(),
            username: username.to_string(),
        })
    }

    pub fn group(key: &str, name: &str) -> Subject {
        Subject::Group(GroupRef {
            key: key.to_string(),
            name: name.to_string(),
        })
    }

    /// One user's membership of one group.
    pub fn membership(group: GroupRef, user: UserRef) -> Subject {
        Subject::Membership(Box::new(MemberRef { group, user }))
    }

    /// The group and the user, for a membership.
    pub fn member(&self) -> Option<(&GroupRef, &UserRef)> {
        match self {
            Subject::Membership(m) => Some((&m.group, &m.user)),
            _ => None,
        }
    }

    pub fn object(&self) -> ObjectKind {
        match self {
            Subject::User(_) => ObjectKind::User,
            Subject::Group(_) => ObjectKind::Group,
            Subject::Membership(_) => ObjectKind::Membership,
        }
    }

    /// The name it is shown under: the username, the group's name, or (for a membership)
    /// the user's username.
    pub fn name(&self) -> &str {
        match self {
            Subject::User(user) => &user.username,
            Subject::Membership(m) => &m.user.username,
            Subject::Group(group) => &group.name,
        }
    }

    /// The key of the user or group it is about; for a membership, the pair of keys.
    pub fn keys(&self) -> (&str, Option<&str>) {
        match self {
            Subject::User(user) => (&user.key, None),
            Subject::Group(group) => (&group.key, None),
            Subject::Membership(m) => (&m.group.key, Some(&m.user.key)),
        }
    }
}

/// The field of an object a change touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// The source key, stored in the target as the object's external id.
    Key,
    Username,
    /// A user's display name.
    Name,
    Email,
    /// A phone number (phones are only ever added).
    Phone,
    /// Whether the account is in service.
    Active,
    /// The owner the target records with the account (set on an account written before
    /// owners were recorded, by the config that proves it made it).
    Owner,
    /// A group's name.
    GroupName,
    /// A membership's group, by name (after: joins, before: leaves).
    Group,
    /// A membership's member, by target id.
    Member,
    /// A mapped attribute or alias, by the target attribute the mapping names.
    Attribute(String),
}

/// One field of one object, before and after. `None` is "no value".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: Field,
    /// `Box<str>`, not `String`: a value is never grown, and an action of a plan held whole
    /// keeps 8 bytes less for each (16 an add's change).
    pub before: Option<Box<str>>,
    pub after: Option<Box<str>>,
}

impl Change {
    pub fn new(field: Field, before: Option<&str>, after: Option<&str>) -> Change {
        Change {
            field,
            before: before.map(Box::from),
            after: after.map(Box::from),
        }
    }
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionStatus {
    /// To be applied.
    Planned,
    /// Kept back by a cap until a human releases it.
    Held,
    /// Only in the journal: the call was started and its outcome is not known yet (or the
    /// run died). A plan read back from the store shows it as it is.
    Applying,
    Applied,
    Failed,
    /// Not to be applied (a rule forbids it, or it became unnecessary).
    Skipped,
}

/// Where a stored plan stands (the `plans` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanStatus {
    /// Saved, not applied yet.
    Planned,
    /// An apply is under way (or died).
    Applying,
    /// Every action applied: it is never applied again.
    Applied,
    /// Applied with held or failed actions left: released or retried by applying it again.
    Partial,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub seq: u32,
    pub action: ActionKind,
    pub subject: Subject,
    pub status: ActionStatus,
    /// Why the action exists, in order; shown joined with "; ".
    pub reasons: Vec<Reason>,
    /// How applying it failed, when it did.
    pub error: Option<String>,
    pub changes: Vec<Change>,
    /// Which cap holds the action, with the counts, when its status is `held`. Boxed: few
    /// actions are held, and a plan may hold a million that are not (64 bytes each unboxed).
    pub hold: Option<Box<Hold>>,
    /// The target's id of the object the action touches (none for an add; a membership's
    /// group id).
    pub target_id: Option<String>,
    /// The object's version when planned (SCIM ETag), for conditional requests.
    pub target_version: Option<String>,
    /// A digest of the object's content when planned: how apply tells that it changed where
    /// the target has no versions.
    pub target_digest: Option<String>,
}

impl Action {
    /// A planned action with nothing known of the target's object yet.
    pub fn new(
        action: ActionKind,
        subject: Subject,
        reasons: Vec<Reason>,
        changes: Vec<Change>,
    ) -> Action {
        Action {
            seq: 0,
            action,
            subject,
            status: ActionStatus::Planned,
            reasons,
            error: None,
            changes,
            hold: None,
            target_id: None,
            target_version: None,
            target_digest: None,
        }
    }

    /// A user to create.
    pub fn add_user(
        key: &str,
        username: &str,
        reasons: Vec<Reason>,
        changes: Vec<Change>,
    ) -> Action {
        Action::new(
            ActionKind::Add,
            Subject::user(key, username),
            reasons,
            changes,
        )
    }

    /// An update, remove or delete of `user`'s account (give it the account with `on_target`).
    pub fn change_user(
        kind: ActionKind,
        user: UserRef,
        reasons: Vec<Reason>,
        changes: Vec<Change>,
    ) -> Action {
        Action::new(kind, Subject::User(user), reasons, changes)
    }

    /// A group to create.
    pub fn add_group(key: &str, name: &str, reason: Reason) -> Action {
        Action::new(
            ActionKind::Add,
            Subject::group(key, name),
            vec![reason],
            vec![
                Change::new(Field::Key, None, Some(key)),
                Change::new(Field::GroupName, None, Some(name)),
            ],
        )
    }

    /// A membership to add or remove.
    pub fn membership(
        kind: ActionKind,
        group: GroupRef,
        user: UserRef,
        reason: Reason,
        changes: Vec<Change>,
    ) -> Action {
        Action::new(
            kind,
            Subject::membership(group, user),
            vec![reason],
            changes,
        )
    }

    /// The same action, about the target object `id` as it was when planned.
    pub fn on_target(mut self, id: &str, version: Option<&str>, digest: Option<String>) -> Action {
        self.target_id = Some(id.to_string());
        self.target_version = version.map(str::to_string);
        self.target_digest = digest;
        self
    }

    /// The same action, not to be applied, for `reason` alone.
    pub fn skipped(mut self, reason: Reason) -> Action {
        self.status = ActionStatus::Skipped;
        self.reasons = vec![reason];
        self
    }

    pub fn object(&self) -> ObjectKind {
        self.subject.object()
    }

    /// The name the action is shown under (see `Subject::name`).
    pub fn name(&self) -> &str {
        self.subject.name()
    }

    /// Why the action exists, and how applying it failed, as people read it.
    pub fn reason(&self) -> String {
        let mut text = Reason::join(&self.reasons);
        if let Some(error) = &self.error {
            text.push_str("; failed: ");
            text.push_str(error);
        }
        text
    }

    /// The change of `field`, if the action changes it.
    pub fn change(&self, field: &Field) -> Option<&Change> {
        self.changes.iter().find(|c| &c.field == field)
    }

    /// The value a change sets for `field`, if the action changes it.
    pub fn after(&self, field: &Field) -> Option<&str> {
        self.change(field).and_then(|c| c.after.as_deref())
    }

    /// An update that takes a user's account out of service (`active: true -> false`)
    /// because the source has the account out of service.
    pub fn deactivates(&self) -> bool {
        self.object() == ObjectKind::User
            && self.action == ActionKind::Update
            && self.change(&Field::Active).is_some_and(|c| {
                c.before.as_deref() == Some("true") && c.after.as_deref() == Some("false")
            })
    }

    /// What the remove caps count, hold together and `--allow-removes` releases: removes,
    /// deletes, and updates that deactivate an account.
    pub fn counts_as_removal(&self) -> bool {
        self.action.is_removal() || self.deactivates()
    }

    /// The flag that releases this action when it is held: `--allow-removes` for what the
    /// remove caps hold, `--allow-deletes` for `max-deletes`, and so on; an action held by
    /// `max-changes` by the flag of its own kind. `None`: only `--force` releases it.
    pub fn released_by(&self) -> Option<Allowance> {
        let hold = self.hold.as_deref()?;
        if self.object() != ObjectKind::User {
            // A membership removal held with its user, or by max-member-removes: as before,
            // with the removes.
            return self.counts_as_removal().then_some(Allowance::Removes);
        }
        fn by_cap(action: &Action, hold: &Hold) -> Option<Allowance> {
            match hold {
                Hold::Cap { name, .. } => Some(match name {
                    CapName::MaxRemoves | CapName::MaxRemovePercent => Allowance::Removes,
                    CapName::MaxDeletes => Allowance::Deletes,
                    CapName::MaxAdds => Allowance::Adds,
                    CapName::MaxUpdates => Allowance::Updates,
                    CapName::MaxChanges => Allowance::of_kind(action),
                }),
                Hold::Dripped { by, .. } => by_cap(action, by),
                Hold::MemberRemoves { .. }
                | Hold::WithUserRemoval { .. }
                | Hold::WaitsForUserAdd { .. } => None,
            }
        }
        by_cap(self, hold)
    }

    /// Kept back by `hold` until a human releases it.
    pub fn hold(&mut self, hold: Hold) {
        self.status = ActionStatus::Held;
        self.hold = Some(Box::new(hold));
    }

    /// Released by a human: to be applied.
    pub fn release(&mut self) {
        self.status = ActionStatus::Planned;
        self.hold = None;
    }
}

/// The `--allow-<kind> N` flags: which kind of held user action each releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allowance {
    Adds,
    Updates,
    /// Removes and deactivations (and deletes, where no `max-deletes` caps them apart).
    Removes,
    Deletes,
}

impl Allowance {
    pub const ALL: [Allowance; 4] = [
        Allowance::Adds,
        Allowance::Updates,
        Allowance::Removes,
        Allowance::Deletes,
    ];

    /// The kind a user action is of, for the flags.
    pub fn of_kind(action: &Action) -> Allowance {
        match action.action {
            ActionKind::Add => Allowance::Adds,
            ActionKind::Update if action.deactivates() => Allowance::Removes,
            ActionKind::Update => Allowance::Updates,
            ActionKind::Remove => Allowance::Removes,
            ActionKind::Delete => Allowance::Deletes,
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Allowance::Adds => "--allow-adds",
            Allowance::Updates => "--allow-updates",
            Allowance::Removes => "--allow-removes",
            Allowance::Deletes => "--allow-deletes",
        }
    }

    /// The plural the messages use: "adds", "removes", ...
    pub fn noun(self) -> &'static str {
        match self {
            Allowance::Adds => "adds",
            Allowance::Updates => "updates",
            Allowance::Removes => "removes",
            Allowance::Deletes => "deletes",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionKind {
    Add,
    Update,
    Remove,
    Delete,
}

impl ActionKind {
    /// The Terraform-style symbol shown in the human plan.
    pub fn symbol(self) -> char {
        match self {
            ActionKind::Add => '+',
            ActionKind::Update => '~',
            ActionKind::Remove => '-',
            ActionKind::Delete => '-',
        }
    }

    /// Removes and deletes take accounts away: the remove caps count them together.
    pub fn is_removal(self) -> bool {
        matches!(self, ActionKind::Remove | ActionKind::Delete)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    User,
    Group,
    Membership,
}

impl Plan {
    /// A copy of everything but the actions.
    pub fn clone_header(&self) -> Plan {
        Plan {
            format_version: self.format_version,
            plan_id: self.plan_id.clone(),
            created_at: self.created_at,
            summary: self.summary.clone(),
            actions: Vec::new(),
            stored: None,
            mode: self.mode,
            config_digest: self.config_digest.clone(),
            desired_digest: self.desired_digest.clone(),
            forced: self.forced.clone(),
            notes: self.notes.clone(),
            remove_means: self.remove_means.clone(),
            delete_means: self.delete_means.clone(),
            target: self.target.clone(),
            max_removes: self.max_removes,
            managed: self.managed,
            target_accounts: self.target_accounts,
            initial: self.initial,
        }
    }

    /// Calls `each` with every action in plan order, wherever the plan keeps them; stops at
    /// the first error (of `each`, or of reading the store).
    pub fn each_action(
        &self,
        mut each: impl FnMut(&Action) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match &self.stored {
            Some(stored) => stored.source.each(&mut each),
            None => self.actions.iter().try_for_each(each),
        }
    }

    /// How many actions `which` picks by their object, kind and status.
    pub fn count_where(&self, which: impl Fn(ObjectKind, ActionKind, ActionStatus) -> bool) -> u64 {
        match &self.stored {
            Some(stored) => stored
                .tally
                .iter()
                .filter(|t| which(t.object, t.action, t.status))
                .map(|t| t.count)
                .sum(),
            None => self
                .actions
                .iter()
                .filter(|a| which(a.object(), a.action, a.status))
                .count() as u64,
        }
    }

    /// How many actions the plan has.
    pub fn len(&self) -> u64 {
        self.count_where(|_, _, _| true)
    }

    /// Whether the plan has no action at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same plan with its actions in memory (read from the store when it keeps them):
    /// what apply and the renderers that look at the whole plan at once work on.
    pub fn in_memory(&self) -> std::io::Result<std::borrow::Cow<'_, Plan>> {
        if self.stored.is_none() {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let mut plan = self.clone_header();
        self.each_action(|a| {
            plan.actions.push(a.clone());
            Ok(())
        })?;
        Ok(std::borrow::Cow::Owned(plan))
    }

    /// `readers` views of this plan to be read at the same time, each on a thread of its
    /// own: a plan kept in the store is read from it once for all of them (`shared`), one in
    /// memory is only borrowed.
    pub fn shared(&self, readers: usize) -> Vec<std::borrow::Cow<'_, Plan>> {
        let Some(stored) = &self.stored else {
            return vec![std::borrow::Cow::Borrowed(self); readers];
        };
        shared::share(&stored.source, readers)
            .into_iter()
            .map(|source| {
                std::borrow::Cow::Owned(Plan {
                    stored: Some(Stored {
                        source,
                        tally: stored.tally.clone(),
                    }),
                    ..self.clone_header()
                })
            })
            .collect()
    }

    /// Recounts the summary from the actions (after statuses changed).
    pub fn recount(&mut self) {
        let mut s = Summary {
            unchanged: self.summary.unchanged,
            rejected: self.summary.rejected,
            unmanaged: self.summary.unmanaged,
            ignored_members: self.summary.ignored_members,
            ..Summary::default()
        };
        let count = |kind: ActionKind, status: Option<ActionStatus>| {
            self.count_where(|_, k, st| {
                k == kind && st != ActionStatus::Skipped && status.is_none_or(|s| s == st)
            })
        };
        s.add = count(ActionKind::Add, None);
        s.update = count(ActionKind::Update, None);
        s.remove = count(ActionKind::Remove, None);
        s.delete = count(ActionKind::Delete, None);
        s.skipped = self.count_where(|_, _, st| st == ActionStatus::Skipped);
        s.held = self.count_where(|_, _, st| st == ActionStatus::Held);
        self.summary = s;
    }
}

/// Where the actions of a stored plan are read from (the state store implements it: the
/// plan model knows no SQL). Each call reads every action again, in plan order, numbered.
pub trait ActionSource: Send + Sync + std::fmt::Debug {
    fn each(&self, each: &mut dyn FnMut(&Action) -> std::io::Result<()>) -> std::io::Result<()>;

    /// The same, handing each action over: a source that makes its actions as it reads
    /// them (the store's) gives them away rather than have them cloned.
    fn each_owned(
        &self,
        each: &mut dyn FnMut(Action) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.each(&mut |a| each(a.clone()))
    }
}

/// How many actions of one object, kind and status a stored plan has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub object: ObjectKind,
    pub action: ActionKind,
    pub status: ActionStatus,
    pub count: u64,
}

/// The actions of a plan kept outside memory, with their counts.
#[derive(Debug, Clone)]
pub struct Stored {
    pub source: std::sync::Arc<dyn ActionSource>,
    pub tally: Vec<Tally>,
}

impl PartialEq for Stored {
    fn eq(&self, other: &Stored) -> bool {
        std::sync::Arc::ptr_eq(&self.source, &other.source) && self.tally == other.tally
    }
}
