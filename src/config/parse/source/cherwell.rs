//! The `source "cherwell"` block: Cherwell Service Management's REST API, the search of one
//! business object.
//!
//! A child of the source parser with the same checker; the API's own names are kept where
//! people will copy them from Cherwell (`business-object` is the `busObId`, a filter names a
//! field by its `fieldId`).

use kdl::{KdlDocument, KdlNode};

use super::super::checker::{Block, Checker, ProblemKind};
use super::super::http::with_http_nodes;
use super::super::values::PAGE_SIZE;
use crate::config::{CherwellFilter, CherwellSource};

pub(in crate::config::parse) const CHERWELL: Block = Block {
    place: "in `source \"cherwell\"`",
    name: "source \"cherwell\"",
    nodes: with_http_nodes![
        "url",
        "client-id",
        "username",
        "password",
        "business-object",
        "filter",
        "page-size",
    ],
    repeatable: &["filter"],
};

const OPERATORS: &[&str] = &["eq", "gt", "lt", "contains", "startswith"];
const FILTER_EXAMPLE: &str = "filter \"FIELD-ID\" \"eq\" \"Active\"";

impl Checker<'_> {
    pub(super) fn cherwell(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<CherwellSource> {
        const URL: &str = "url \"https://cherwell.example.com/CherwellAPI\"";
        const CLIENT_ID: &str = "client-id \"0c8a5a7e-...\"";
        const USERNAME: &str = "username \"roster.sync\"";
        const BUSINESS_OBJECT: &str = "business-object \"9343f8800b8ca5cd0ed0574e5a9bfa5b\"";
        let c = self.children(Some(node), Some(doc), &CHERWELL);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.url(n, &["https://", "http://"], URL));
        let mut name = |node_name: &str, example: &str| {
            self.require(&c, Some(node), node_name, example).map(|n| {
                let entry = self.leaf(n, example)?;
                self.name_string(n, entry)
            })
        };
        let client_id = name("client-id", CLIENT_ID);
        let username = name("username", USERNAME);
        let business_object = name("business-object", BUSINESS_OBJECT);
        let password = self
            .require(
                &c,
                Some(node),
                "password",
                "password env=\"CHERWELL_PASSWORD\"",
            )
            .map(|n| self.secret(n));
        let filters: Vec<Option<CherwellFilter>> =
            c.all("filter").map(|n| self.cherwell_filter(n)).collect();
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &PAGE_SIZE, "page-size 200"));
        let http = self.http_options(&c);
        Some(CherwellSource {
            url: url??,
            client_id: client_id??,
            username: username??,
            password: password??,
            business_object: business_object??,
            filters: filters.into_iter().collect::<Option<Vec<_>>>()?,
            page_size: page_size.unwrap_or(Some(200))? as u32,
            http: http?,
        })
    }

    /// `filter "FIELD-ID" "OPERATOR" "VALUE"`.
    fn cherwell_filter(&mut self, node: &KdlNode) -> Option<CherwellFilter> {
        self.no_children(node);
        let entries = self.entries(node, &[]);
        let [field, operator, value] = entries.args.as_slice() else {
            self.report(
                ProblemKind::InvalidValue,
                node.name().span(),
                format!(
                    "`filter` takes a field id, an operator and a value, found {} values",
                    entries.args.len()
                ),
            )
            .label("needs three values")
            .help(format!("write it like this: {FILTER_EXAMPLE}"));
            return None;
        };
        let field = self.name_string(node, field);
        let op = self.string(node, operator);
        let value = self.string(node, value);
        let op = op?;
        if !OPERATORS.contains(&op.as_str()) {
            self.unknown_value(
                op.span,
                &op,
                OPERATORS,
                format!("unknown filter operator \"{}\"", op.as_str()),
                "not a Cherwell search operator".into(),
                format!("the operator is one of {}", OPERATORS.join(", ")),
            );
            return None;
        }
        Some(CherwellFilter {
            field_id: field?.value,
            operator: op.value,
            value: value?.value,
        })
    }
}
