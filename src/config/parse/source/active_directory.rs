//! The Active Directory settings of `source "ldap"`: `active-directory`, `disabled` and
//! `follow-referrals`.
//!
//! AD is named explicitly rather than detected: detecting it needs a connection, and a
//! config should say what it will do before roster connects anywhere.

use super::super::checker::{Checker, Children, ProblemKind};
use crate::config::{ActiveDirectory, DisabledAccounts};

impl Checker<'_> {
    /// `(active_directory, follow_referrals)`, each `None` when invalid (already reported).
    pub(super) fn active_directory(
        &mut self,
        c: &Children,
    ) -> (Option<Option<ActiveDirectory>>, Option<bool>) {
        let follow_referrals = c
            .get("follow-referrals")
            .map_or(Some(false), |n| self.leaf_bool(n));
        let enabled = c
            .get("active-directory")
            .map_or(Some(false), |n| self.leaf_bool(n));
        let disabled = match c.get("disabled") {
            None => Some(DisabledAccounts::Skip),
            Some(node) => {
                let choice = self.choice(
                    node,
                    &[
                        ("skip", DisabledAccounts::Skip),
                        ("inactive", DisabledAccounts::Inactive),
                    ],
                );
                if enabled == Some(false) {
                    self.report(
                        ProblemKind::InvalidValue,
                        node.name().span(),
                        "`disabled` applies only to Active Directory",
                    )
                    .label("needs active-directory #true")
                    .help("add `active-directory #true` to this block, or remove `disabled`");
                    None
                } else {
                    choice
                }
            }
        };
        let active_directory = match (enabled, disabled) {
            (Some(true), Some(disabled)) => Some(Some(ActiveDirectory { disabled })),
            (Some(false), Some(_)) => Some(None),
            _ => None,
        };
        (active_directory, follow_referrals)
    }
}
