//! The `source "servicenow"` and `source "freshservice"` blocks.
//!
//! A child of the parser so that it uses the same checker (schemas, did-you-mean, secrets only
//! through `env=` / `file=`), kept in its own file so that each kind of source reads as one
//! piece.

use kdl::{KdlDocument, KdlNode, KdlValue};

use super::super::checker::{Block, Checker, ProblemKind, optional};
use super::super::http::with_http_nodes;
use super::super::values::{PAGE_SIZE, Whole};
use crate::config::Spanned;
use crate::config::{FreshserviceList, FreshserviceSource, ServiceNowOAuth, ServiceNowSource};

pub(in crate::config::parse) const SERVICENOW: Block = Block {
    place: "in `source \"servicenow\"`",
    name: "source \"servicenow\"",
    nodes: with_http_nodes![
        "url",
        "username",
        "password",
        "client-id",
        "client-secret",
        "query",
        "page-size",
    ],
    repeatable: &[],
};

pub(in crate::config::parse) const FRESHSERVICE: Block = Block {
    place: "in `source \"freshservice\"`",
    name: "source \"freshservice\"",
    nodes: with_http_nodes!["url", "api-key", "include", "page-size"],
    repeatable: &[],
};

/// Freshservice returns at most 100 records a page.
const FRESHSERVICE_PAGE_SIZE: Whole = Whole {
    min: 1,
    max: 100,
    help: "`page-size` is a whole number from 1 to 100 (Freshservice's largest page)",
};

const FRESHSERVICE_LISTS: &[(&str, FreshserviceList)] = &[
    ("requesters", FreshserviceList::Requesters),
    ("agents", FreshserviceList::Agents),
];

const INCLUDE_EXAMPLE: &str = "include \"requesters\" \"agents\"";

impl Checker<'_> {
    pub(super) fn servicenow(
        &mut self,
        node: &KdlNode,
        doc: &KdlDocument,
    ) -> Option<ServiceNowSource> {
        const URL: &str = "url \"https://acme.service-now.com\"";
        const USERNAME: &str = "username \"roster.sync\"";
        const CLIENT_ID: &str = "client-id \"3f2a...\"";
        let c = self.children(Some(node), Some(doc), &SERVICENOW);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.url(n, &["https://", "http://"], URL));
        let username = self.require(&c, Some(node), "username", USERNAME).map(|n| {
            let entry = self.leaf(n, USERNAME)?;
            self.name_string(n, entry)
        });
        let password = self
            .require(&c, Some(node), "password", "password env=\"SN_PASSWORD\"")
            .map(|n| self.secret(n));
        let id_node = c.get("client-id");
        let client_id = id_node.map(|n| {
            let entry = self.leaf(n, CLIENT_ID)?;
            self.name_string(n, entry)
        });
        let secret_node = c.get("client-secret");
        let client_secret = secret_node.map(|n| self.secret(n));
        match (id_node, secret_node) {
            (Some(id), None) => self.given_without(
                id,
                "client-secret",
                "no secret for this OAuth client",
                "add client-secret env=\"SN_CLIENT_SECRET\" (or file=\"PATH\"), or remove client-id to use basic auth",
            ),
            (None, Some(secret)) => self.given_without(
                secret,
                "client-id",
                "secret for no OAuth client",
                format!("add the OAuth application's id ({CLIENT_ID}), or remove client-secret"),
            ),
            _ => {}
        }
        let query = c
            .get("query")
            .map(|n| self.leaf_string(n, "query \"active=true\""));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &PAGE_SIZE, "page-size 1000"));
        let http = self.http_options(&c);

        let oauth = match (optional(client_id)?, optional(client_secret)?) {
            (Some(client_id), Some(client_secret)) => Some(ServiceNowOAuth {
                client_id,
                client_secret,
            }),
            (None, None) => None,
            // Reported above.
            _ => return None,
        };
        Some(ServiceNowSource {
            url: url??,
            username: username??,
            password: password??,
            oauth,
            query: query.unwrap_or_else(|| {
                Some(Spanned::new("active=true".to_string(), node.name().span()))
            })?,
            page_size: page_size.unwrap_or(Some(1000))? as u32,
            http: http?,
        })
    }

    pub(super) fn freshservice(
        &mut self,
        node: &KdlNode,
        doc: &KdlDocument,
    ) -> Option<FreshserviceSource> {
        const URL: &str = "url \"https://acme.freshservice.com\"";
        let c = self.children(Some(node), Some(doc), &FRESHSERVICE);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.url(n, &["https://", "http://"], URL));
        let api_key = self
            .require(&c, Some(node), "api-key", "api-key env=\"FS_API_KEY\"")
            .map(|n| self.secret(n));
        let include = c.get("include").map(|n| self.include(n));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &FRESHSERVICE_PAGE_SIZE, "page-size 100"));
        let http = self.http_options(&c);
        Some(FreshserviceSource {
            url: url??,
            api_key: api_key??,
            include: include.unwrap_or_else(|| Some(vec![FreshserviceList::Requesters]))?,
            page_size: page_size.unwrap_or(Some(100))? as u32,
            http: http?,
        })
    }

    /// `include "requesters" "agents"`: one or both lists, each once.
    fn include(&mut self, node: &KdlNode) -> Option<Vec<FreshserviceList>> {
        self.no_children(node);
        let entries = self.entries(node, &[]);
        if entries.args.is_empty() {
            self.one_arg(node, &[], INCLUDE_EXAMPLE);
            return None;
        }
        let names: Vec<&str> = FRESHSERVICE_LISTS.iter().map(|(n, _)| *n).collect();
        let mut lists = Vec::new();
        let mut ok = true;
        for entry in entries.args {
            let KdlValue::String(value) = entry.value() else {
                self.wrong_type(node, entry, entry.value(), "a string")
                    .help(format!("write it like this: {INCLUDE_EXAMPLE}"));
                ok = false;
                continue;
            };
            let Some((_, list)) = FRESHSERVICE_LISTS.iter().find(|(n, _)| n == value) else {
                self.unknown_value(
                    entry.span(),
                    value,
                    &names,
                    format!("unknown Freshservice list \"{value}\""),
                    "not a list roster reads".to_string(),
                    "`include` takes \"requesters\", \"agents\", or both".to_string(),
                );
                ok = false;
                continue;
            };
            if lists.contains(list) {
                self.report(
                    ProblemKind::DuplicateNode,
                    entry.span(),
                    format!("\"{value}\" is included twice"),
                )
                .label("repeated here")
                .help("name each list once");
                ok = false;
                continue;
            }
            lists.push(*list);
        }
        ok.then_some(lists)
    }
}
