//! The `target` block: which kind of target, and the settings of the SCIM target.

use kdl::{KdlDocument, KdlNode};

use super::checker::{Block, Checker, Children, optional};
use super::http::with_http_nodes;
use super::values::{Number, PAGE_SIZE, Whole};
use crate::config::{ScimTarget, TargetConfig};

pub(super) const TARGET_TYPES: &[&str] = &["scim"];

pub(super) const SCIM: Block = Block {
    place: "in `target \"scim\"`",
    name: "target \"scim\"",
    nodes: with_http_nodes!["url", "token", "concurrency", "rate-limit", "page-size"],
    repeatable: &[],
};

pub(super) const CONCURRENCY: Whole = Whole {
    min: 1,
    max: 64,
    help: "`concurrency` is a whole number from 1 to 64",
};

pub(super) const RATE_LIMIT: Number = Number {
    min: 0.0,
    min_inclusive: false,
    max: None,
    help: "`rate-limit` is requests per second, a number above 0 such as 20 or 0.5",
};

impl Checker<'_> {
    /// `target "scim" { ... }`
    pub(super) fn target(&mut self, top: &Children) -> Option<TargetConfig> {
        let node = self.require(
            top,
            None,
            "target",
            "target \"scim\" { url \"https://example.com/scim/v2\" ... }",
        )?;
        let kind = self.block_type(node, TARGET_TYPES, "target")?;
        let children = self.block(node, &format!("target \"{kind}\""))?;
        self.scim(node, children).map(TargetConfig::Scim)
    }

    pub(super) fn scim(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<ScimTarget> {
        const URL: &str = "url \"https://example.com/scim/v2\"";
        let c = self.children(Some(node), Some(doc), &SCIM);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.url(n, &["http://", "https://"], URL));
        let token = self
            .require(&c, Some(node), "token", "token env=\"SCIM_TOKEN\"")
            .map(|n| self.secret(n));
        let concurrency = c
            .get("concurrency")
            .map(|n| self.leaf_whole(n, &CONCURRENCY, "concurrency 4"));
        let rate_limit = c
            .get("rate-limit")
            .map(|n| self.leaf_number(n, &RATE_LIMIT, "rate-limit 20"));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &PAGE_SIZE, "page-size 500"));
        let http = self.http_options(&c);
        Some(ScimTarget {
            url: url??,
            token: token??,
            http: http?,
            concurrency: concurrency.unwrap_or(Some(4))? as u32,
            rate_limit: optional(rate_limit)?,
            page_size: page_size.unwrap_or(Some(500))? as u32,
        })
    }
}
