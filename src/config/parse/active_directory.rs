//! The Active Directory settings of `source "ldap"`: `active-directory`, `disabled` and
//! `follow-referrals`.
//!
//! AD is named explicitly rather than detected: detecting it needs a connection, and a
//! config should say what it will do before roster connects anywhere.

use super::{Checker, Children, ProblemKind};
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
                let value_span = node
                    .entries()
                    .iter()
                    .find(|e| e.name().is_none())
                    .map_or(node.name().span(), |e| e.span());
                if enabled == Some(false) {
                    self.report(
                        ProblemKind::InvalidValue,
                        node.name().span(),
                        "`disabled` applies only to Active Directory",
                    )
                    .label("needs active-directory #true")
                    .help("add `active-directory #true` to this block, or remove `disabled`");
                    None
                } else if choice == Some(DisabledAccounts::Inactive) {
                    self.report(
                        ProblemKind::Unsupported,
                        value_span,
                        "`disabled \"inactive\"` is not supported yet",
                    )
                    .label("not supported yet")
                    .help(
                        "roster cannot keep an account inactive in the target yet; use \
                         disabled \"skip\" (the default): disabled and expired accounts are left \
                         out of the source, and removed from the target in remove mode",
                    );
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
