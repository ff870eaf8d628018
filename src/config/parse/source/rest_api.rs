//! The `source "rest"` block: any JSON API, described rather than coded.
//!
//! A child of the source parser with the same checker (schemas, did-you-mean, secrets only
//! through `env=` / `file=`). What it checks beyond the node schema: the auth kind and the
//! nodes its block needs, the paging style and its properties, and that every JSON Pointer
//! is one (RFC 6901: empty, or starting with `/`), so that a misspelt pointer is a config
//! error with a span rather than an empty read.

use std::collections::HashMap;

use kdl::{KdlDocument, KdlEntry, KdlNode};

use super::super::checker::{Block, Checker, ProblemKind, optional};
use super::super::http::with_http_nodes;
use super::super::target::RATE_LIMIT;
use super::super::values::Whole;
use crate::config::{RestApiSource, RestAuth, RestOAuth, RestPaging, Spanned};

pub(in crate::config::parse) const REST: Block = Block {
    place: "in `source \"rest\"`",
    name: "source \"rest\"",
    nodes: with_http_nodes![
        "url",
        "param",
        "auth",
        "paging",
        "page-size",
        "records",
        "total",
        "id",
        "rate-limit",
    ],
    repeatable: &["param"],
};

pub(in crate::config::parse) const AUTH_BASIC: Block = Block {
    place: "in `auth \"basic\"`",
    name: "auth \"basic\"",
    nodes: &["user", "password"],
    repeatable: &[],
};

pub(in crate::config::parse) const AUTH_BEARER: Block = Block {
    place: "in `auth \"bearer\"`",
    name: "auth \"bearer\"",
    nodes: &["token"],
    repeatable: &[],
};

pub(in crate::config::parse) const AUTH_API_KEY: Block = Block {
    place: "in `auth \"api-key\"`",
    name: "auth \"api-key\"",
    nodes: &["header", "key"],
    repeatable: &[],
};

pub(in crate::config::parse) const AUTH_OAUTH: Block = Block {
    place: "in `auth \"oauth\"`",
    name: "auth \"oauth\"",
    nodes: &["token-url", "client-id", "client-secret", "scope"],
    repeatable: &[],
};

const AUTH_KINDS: &[&str] = &["none", "basic", "bearer", "api-key", "oauth"];
const PAGING_STYLES: &[&str] = &[
    "none",
    "offset",
    "page",
    "cursor",
    "next-link",
    "link-header",
];

const REST_PAGE_SIZE: Whole = Whole {
    min: 1,
    max: 10_000,
    help: "`page-size` is a whole number from 1 to 10000",
};

const FIRST_PAGE: Whole = Whole {
    min: 0,
    max: 1,
    help: "`first=` is the number of the first page, 0 or 1",
};

const AUTH_EXAMPLE: &str = "auth \"bearer\" { token env=\"REST_TOKEN\" }";
const PAGING_EXAMPLE: &str = "paging \"offset\" offset=\"offset\" limit=\"limit\"";
const POINTER_HELP: &str = "a JSON Pointer (RFC 6901) starts with `/` and names each step, \
     like \"/data/items\"; \"\" is the whole answer";

impl Checker<'_> {
    pub(super) fn rest_api(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<RestApiSource> {
        const URL: &str = "url \"https://itsm.example.com/api/v2/people\"";
        let c = self.children(Some(node), Some(doc), &REST);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.rest_url(n, URL));
        let params: Vec<Option<(String, String)>> = c.all("param").map(|n| self.param(n)).collect();
        let auth = self
            .require(&c, Some(node), "auth", AUTH_EXAMPLE)
            .map(|n| self.auth(n));
        let paging = self
            .require(&c, Some(node), "paging", PAGING_EXAMPLE)
            .map(|n| self.paging(n));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &REST_PAGE_SIZE, "page-size 100"));
        let records = self
            .require(&c, Some(node), "records", "records \"/data\"")
            .map(|n| self.leaf_pointer(n, "records \"/data\"", true));
        let total = c
            .get("total")
            .map(|n| self.leaf_pointer(n, "total \"/meta/total\"", false));
        let id = c
            .get("id")
            .map(|n| self.leaf_pointer(n, "id \"/id\"", false));
        let rate_limit = c
            .get("rate-limit")
            .map(|n| self.leaf_number(n, &RATE_LIMIT, "rate-limit 10"));
        let http = self.http_options(&c);
        Some(RestApiSource {
            url: url??,
            params: params.into_iter().collect::<Option<Vec<_>>>()?,
            auth: auth??,
            paging: paging??,
            page_size: page_size.unwrap_or(Some(100))? as u32,
            records: records??,
            total: optional(total)?,
            id: optional(id)?,
            rate_limit: optional(rate_limit)?,
            http: http?,
        })
    }

    /// The endpoint: http(s), and no query or fragment (those are `param` nodes).
    fn rest_url(&mut self, node: &KdlNode, example: &str) -> Option<Spanned<String>> {
        let url = self.url(node, &["https://", "http://"], example)?;
        if url.contains('?') || url.contains('#') {
            self.report(
                ProblemKind::InvalidValue,
                url.span,
                "`url` of a REST source must not carry a query or a fragment",
            )
            .label("query here")
            .help("give each query parameter as its own node: param \"status\" \"active\"");
            return None;
        }
        Some(url)
    }

    /// `param "NAME" "VALUE"`.
    fn param(&mut self, node: &KdlNode) -> Option<(String, String)> {
        const EXAMPLE: &str = "param \"status\" \"active\"";
        self.no_children(node);
        let entries = self.entries(node, &[]);
        let [name, value] = entries.args.as_slice() else {
            self.report(
                ProblemKind::InvalidValue,
                node.name().span(),
                format!(
                    "`param` takes a name and a value, found {}",
                    entries.args.len()
                ),
            )
            .label("needs two values")
            .help(format!("write it like this: {EXAMPLE}"));
            return None;
        };
        let name = self.name_string(node, name)?;
        let value = self.string(node, value)?;
        Some((name.value, value.value))
    }

    /// `auth "KIND" { ... }`.
    fn auth(&mut self, node: &KdlNode) -> Option<RestAuth> {
        let kind = self.block_type(node, AUTH_KINDS, "auth")?;
        if kind == "none" {
            self.no_children(node);
            return Some(RestAuth::None);
        }
        let doc = self.block(node, &format!("auth \"{kind}\""))?;
        match kind.as_str() {
            "basic" => {
                let c = self.children(Some(node), Some(doc), &AUTH_BASIC);
                let user = self
                    .require(&c, Some(node), "user", "user \"roster.sync\"")
                    .map(|n| {
                        let entry = self.leaf(n, "user \"roster.sync\"")?;
                        self.name_string(n, entry)
                    });
                let password = self
                    .require(&c, Some(node), "password", "password env=\"REST_PASSWORD\"")
                    .map(|n| self.secret(n));
                Some(RestAuth::Basic {
                    user: user??,
                    password: password??,
                })
            }
            "bearer" => {
                let c = self.children(Some(node), Some(doc), &AUTH_BEARER);
                let token = self
                    .require(&c, Some(node), "token", "token env=\"REST_TOKEN\"")
                    .map(|n| self.secret(n));
                Some(RestAuth::Bearer { token: token?? })
            }
            "api-key" => {
                const HEADER: &str = "header \"X-API-Key\"";
                let c = self.children(Some(node), Some(doc), &AUTH_API_KEY);
                let header = self
                    .require(&c, Some(node), "header", HEADER)
                    .map(|n| self.header_name(n, HEADER));
                let key = self
                    .require(&c, Some(node), "key", "key env=\"REST_API_KEY\"")
                    .map(|n| self.secret(n));
                Some(RestAuth::ApiKey {
                    header: header??,
                    key: key??,
                })
            }
            _ => {
                const TOKEN_URL: &str = "token-url \"https://itsm.example.com/oauth/token\"";
                const CLIENT_ID: &str = "client-id \"roster\"";
                let c = self.children(Some(node), Some(doc), &AUTH_OAUTH);
                let token_url = self
                    .require(&c, Some(node), "token-url", TOKEN_URL)
                    .map(|n| self.rest_url(n, TOKEN_URL));
                let client_id = self
                    .require(&c, Some(node), "client-id", CLIENT_ID)
                    .map(|n| {
                        let entry = self.leaf(n, CLIENT_ID)?;
                        self.name_string(n, entry)
                    });
                let client_secret = self
                    .require(
                        &c,
                        Some(node),
                        "client-secret",
                        "client-secret env=\"REST_CLIENT_SECRET\"",
                    )
                    .map(|n| self.secret(n));
                let scope = c
                    .get("scope")
                    .map(|n| self.leaf_string(n, "scope \"users.read\""));
                Some(RestAuth::OAuth(RestOAuth {
                    token_url: token_url??,
                    client_id: client_id??,
                    client_secret: client_secret??,
                    scope: optional(scope)?.map(|s| s.value),
                }))
            }
        }
    }

    /// `header "X-API-Key"`: a header name HTTP can carry, and not one roster sets itself.
    fn header_name(&mut self, node: &KdlNode, example: &str) -> Option<Spanned<String>> {
        let value = self.leaf_string(node, example)?;
        let valid = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                format!(
                    "`header` \"{}\" is not an HTTP header name",
                    value.escape_debug()
                ),
            )
            .label("not a header name")
            .help(format!("write it like this: {example}"));
            return None;
        }
        if ["accept", "content-type", "content-length", "host"]
            .contains(&value.to_ascii_lowercase().as_str())
        {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                format!("`header` \"{}\" is set by roster itself", value.as_str()),
            )
            .label("reserved header")
            .help("name the header the API reads its key from, such as X-API-Key or Authorization");
            return None;
        }
        Some(value)
    }

    /// `paging "STYLE" prop=...`.
    fn paging(&mut self, node: &KdlNode) -> Option<RestPaging> {
        self.no_children(node);
        let entries = self.entries(
            node,
            &["offset", "limit", "page", "size", "first", "next", "param"],
        );
        let entry = self.one_arg(node, &entries.args, PAGING_EXAMPLE)?;
        let style = self.string(node, entry)?;
        if !PAGING_STYLES.contains(&style.as_str()) {
            self.unknown_value(
                entry.span(),
                &style,
                PAGING_STYLES,
                format!("unknown paging style \"{}\"", style.as_str()),
                "not a paging style".into(),
                format!("`paging` is one of {}", PAGING_STYLES.join(", ")),
            );
            return None;
        }
        let allowed: &[&str] = match style.as_str() {
            "none" => &[],
            "offset" => &["offset", "limit"],
            "page" => &["page", "size", "first"],
            "cursor" => &["next", "param", "size"],
            "next-link" => &["next", "size"],
            _ => &["size"],
        };
        let mut ok = true;
        for prop in node.entries() {
            let Some(name) = prop.name().map(|n| n.value()) else {
                continue;
            };
            if !allowed.contains(&name) {
                ok = false;
                self.report(
                    ProblemKind::UnknownProperty,
                    prop.span(),
                    format!("`{name}=` does not apply to paging \"{}\"", style.as_str()),
                )
                .label("not for this style")
                .help(if allowed.is_empty() {
                    format!("paging \"{}\" takes no properties", style.as_str())
                } else {
                    format!(
                        "paging \"{}\" takes {}",
                        style.as_str(),
                        allowed
                            .iter()
                            .map(|p| format!("`{p}=`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            }
        }
        let props = &entries.props;
        let paging = match style.as_str() {
            "none" => RestPaging::None,
            "offset" => RestPaging::Offset {
                offset: self.prop_or(node, props, "offset", "offset")?,
                limit: self.prop_or(node, props, "limit", "limit")?,
            },
            "page" => {
                let page = self.prop_or(node, props, "page", "page")?;
                let size = self.prop_or(node, props, "size", "per_page")?;
                let first = match props.get("first") {
                    Some(entry) => self.whole(node, entry, &FIRST_PAGE)? as u64,
                    None => 1,
                };
                RestPaging::Page { page, size, first }
            }
            "cursor" => {
                let next = self.required_pointer(node, props.get("next").copied(), style.span)?;
                let param = self.prop_or(node, props, "param", "cursor")?;
                let size = props
                    .get("size")
                    .map(|e| self.name_string(node, e).map(|s| s.value));
                RestPaging::Cursor {
                    next,
                    param,
                    size: optional(size)?,
                }
            }
            "next-link" => {
                let next = self.required_pointer(node, props.get("next").copied(), style.span)?;
                let size = props
                    .get("size")
                    .map(|e| self.name_string(node, e).map(|s| s.value));
                RestPaging::NextLink {
                    next,
                    size: optional(size)?,
                }
            }
            _ => {
                let size = props
                    .get("size")
                    .map(|e| self.name_string(node, e).map(|s| s.value));
                RestPaging::LinkHeader {
                    size: optional(size)?,
                }
            }
        };
        ok.then_some(paging)
    }

    /// A parameter-name property, or its default.
    fn prop_or(
        &mut self,
        node: &KdlNode,
        props: &HashMap<&str, &KdlEntry>,
        prop: &str,
        default: &str,
    ) -> Option<String> {
        match props.get(prop) {
            Some(entry) => self.name_string(node, entry).map(|s| s.value),
            None => Some(default.to_string()),
        }
    }

    /// `next="/meta/next"` of the cursor and next-link styles: required, a non-empty pointer.
    fn required_pointer(
        &mut self,
        node: &KdlNode,
        entry: Option<&KdlEntry>,
        style: miette::SourceSpan,
    ) -> Option<String> {
        let Some(entry) = entry else {
            self.report(
                ProblemKind::MissingValue,
                style,
                "this paging style needs `next=`, where each answer says what comes next",
            )
            .label("no next=")
            .help(
                "write it like this: paging \"cursor\" next=\"/meta/next_cursor\" param=\"cursor\"",
            );
            return None;
        };
        let value = self.string(node, entry)?;
        self.check_pointer(&value, false).then_some(value.value)
    }

    /// A node whose one value is a JSON Pointer; `""` only where `whole` allows it.
    fn leaf_pointer(
        &mut self,
        node: &KdlNode,
        example: &str,
        whole: bool,
    ) -> Option<Spanned<String>> {
        let value = self.leaf_string(node, example)?;
        self.check_pointer(&value, whole).then_some(value)
    }

    fn check_pointer(&mut self, value: &Spanned<String>, whole: bool) -> bool {
        let problem = if value.is_empty() {
            (!whole).then_some("an empty pointer names the whole answer, not a value in it")
        } else if !value.starts_with('/') {
            Some("not a JSON Pointer: it does not start with `/`")
        } else if has_bad_escape(value) {
            Some("`~` in a JSON Pointer must be written ~0, and `/` inside a name ~1")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.report(ProblemKind::InvalidValue, value.span, problem.to_string())
                .label("not a pointer to a value")
                .help(POINTER_HELP);
            return false;
        }
        true
    }
}

/// A `~` not followed by `0` or `1` (RFC 6901 §3).
fn has_bad_escape(pointer: &str) -> bool {
    let mut chars = pointer.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return true;
        }
    }
    false
}
