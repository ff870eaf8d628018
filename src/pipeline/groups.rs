//! Group sync as a stage of the plan pipeline: read the groups of both sides, resolve the source's
//! members to synced users, pair the groups in the store, plan them, and merge the group
//! actions into the user plan.
//!
//! The groups are read *before* the users (source and target groups at the same time, on
//! two threads), because role rules with `in-group=` need the source's groups while users
//! are mapped. Groups are few next to users, so they are held in memory until the users
//! are stored; then their members are resolved against the stored users and everything
//! goes into the store, where the pairing is a join like the users'.
//!
//! A config without a `group` block and without `group-all` skips all of this: no group is
//! read or touched.

use std::sync::Arc;

use super::read::ReadError;
use super::{Forced, PipelineError, Refusal};
use crate::config::Config;
use crate::membership::{self, GroupIndex, GroupMapper, SettledGroups};
use crate::model::{ResolvedGroup, TargetGroup};
use crate::plan::Summary;
use crate::planner::{self, groups::UserFacts};
use crate::source;
use crate::store::Store;
use crate::target::Target;

/// The key of the `group-all` group when no source group has its name.
const GROUP_ALL_PREFIX: &str = "group-all:";

/// Both sides' groups, read and waiting for the users.
pub(super) struct GroupRead {
    /// The source's groups; `None` with `group-all` alone (no `group` block).
    source: Option<SettledGroups>,
    target: Vec<TargetGroup>,
    index: Arc<GroupIndex>,
}

impl GroupRead {
    /// The source's groups, for `in-group=` role rules.
    pub fn index(&self) -> Arc<GroupIndex> {
        Arc::clone(&self.index)
    }
}

/// Whether the config syncs groups at all.
fn enabled(config: &Config) -> bool {
    config.group.is_some() || config.policy.group_all.is_some()
}

/// Reads the source's groups (when the config has a `group` block) and the target's, at
/// the same time. `None` when the config syncs no groups.
pub(super) fn read(config: &Config, target: &dyn Target) -> Result<Option<GroupRead>, ReadError> {
    if !enabled(config) {
        return Ok(None);
    }
    std::thread::scope(|scope| {
        let source_side = config
            .group
            .as_ref()
            .map(|_| scope.spawn(|| read_source(config)));
        let mut groups = Vec::new();
        let target_result = target.list_groups(&mut |g| groups.push(g));
        let source = match source_side {
            Some(handle) => Some(
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            ),
            None => None,
        };
        target_result.map_err(|error| ReadError::Target {
            where_: target.describe(),
            error,
        })?;
        log::info!(
            "read {} source groups and {} target groups",
            source.as_ref().map_or(0, |s| s.groups.len()),
            groups.len()
        );
        let index = source
            .as_ref()
            .map(|s| GroupIndex::new(&s.groups))
            .unwrap_or_default();
        Ok(Some(GroupRead {
            source,
            target: groups,
            index: Arc::new(index),
        }))
    })
}

fn read_source(config: &Config) -> Result<SettledGroups, ReadError> {
    let Some(mapping) = &config.group else {
        return Ok(SettledGroups::default());
    };
    let mut source = source::open(&config.source);
    let mapper = GroupMapper::new(mapping);
    let mut groups = Vec::new();
    let mut rejects = Vec::new();
    source
        .read_groups(
            &mapper.query(mapping),
            &mut |record| match mapper.map(record) {
                Ok(group) => groups.push(group),
                Err(reject) => rejects.push(reject),
            },
        )
        .map_err(|error| ReadError::Source {
            where_: source.describe(),
            error,
        })?;
    let mut settled = membership::settle(groups, mapping.nested);
    settled.rejects.extend(rejects);
    for reject in &settled.rejects {
        log::warn!("rejected group {}: {}", reject.origin, reject.reason);
    }
    for cycle in &settled.cycles {
        log::warn!(
            "nested groups form a cycle: {} -> {}; each of them gets the members of all",
            cycle.join(" -> "),
            cycle.first().map_or("", String::as_str)
        );
    }
    Ok(settled)
}

/// Plans the groups and memberships and appends them to the user plan in the store's draft
/// (as `planner::groups::merge` does with a list: following the user actions), counting the
/// ignored members into `summary`. Refuses when the source returned no groups while the
/// target has groups roster manages, unless `--force` (then the refusal is noted in `forced`).
pub(super) fn plan(
    store: &Store,
    run_id: i64,
    config: &Config,
    read: Option<GroupRead>,
    summary: &mut Summary,
    forced: &mut Forced,
) -> Result<(), PipelineError> {
    let Some(read) = read else {
        return Ok(());
    };
    let settled = read.source.unwrap_or_default();
    if config.group.is_some() {
        check_source(&settled, &read.target, forced)?;
    }
    let mut resolved = membership::resolve(&settled.groups, &store.user_refs(run_id)?);
    let mut ignored = 0;
    for group in &resolved {
        if group.ignored > 0 {
            log::info!(
                "group {}: {} members are not synced users (ignored)",
                group.name,
                group.ignored
            );
        }
        ignored += group.ignored;
    }
    if let Some(name) = &config.policy.group_all {
        add_group_all(&mut resolved, name);
    }
    store.load_groups(run_id, &resolved, &read.target, &settled.rejects)?;
    let diff = store.group_pairs(run_id)?;
    let groups = planner::groups::plan_groups(diff.groups, diff.members, &config.policy);
    if groups.unmanaged_members > 0 {
        log::info!(
            "{} members of managed groups are not roster's accounts: left alone",
            groups.unmanaged_members
        );
    }
    // What the memberships need of the user actions, of the users they name only.
    let mut users = UserFacts::for_memberships(&groups.actions);
    store.each_drafted_user(
        |a| {
            users.take(&a);
            Ok(())
        },
        "action IN ('add', 'remove', 'delete') OR status = 'skipped'",
    )?;
    store.draft_groups(&planner::groups::settle(&users, groups.actions))?;
    summary.ignored_members = ignored;
    store.prune_group_snapshots()?;
    Ok(())
}

/// `group-all "NAME"`: a source group of that name gets every synced user; without one, a
/// group of its own, keyed by the name.
fn add_group_all(groups: &mut Vec<ResolvedGroup>, name: &str) {
    match groups
        .iter_mut()
        .find(|g| g.name.to_lowercase() == name.to_lowercase())
    {
        Some(group) => group.all_users = true,
        None => groups.push(ResolvedGroup {
            key: format!("{GROUP_ALL_PREFIX}{name}"),
            name: name.to_string(),
            all_users: true,
            ..ResolvedGroup::default()
        }),
    }
}

/// A group read that finds nothing while the target has groups roster made is more likely
/// a wrong selection (base-dn, filter, query) than a directory without groups.
fn check_source(
    settled: &SettledGroups,
    target: &[TargetGroup],
    forced: &mut Forced,
) -> Result<(), PipelineError> {
    let managed = target
        .iter()
        .filter(|g| {
            g.external_id
                .as_deref()
                .is_some_and(|k| !k.starts_with(GROUP_ALL_PREFIX))
        })
        .count();
    if !settled.groups.is_empty() || !settled.rejects.is_empty() || managed == 0 {
        return Ok(());
    }
    forced.or_refuse(Refusal::NoGroups { managed }, None)
}
