//! The `target` block: which kind of target, and the settings of the SCIM and LoginTC
//! targets; and the check that the user mapping asks for nothing the target cannot hold.

use kdl::{KdlDocument, KdlNode};
use miette::SourceSpan;

use super::checker::{Block, Checker, Children, ProblemKind, optional};
use super::http::with_http_nodes;
use super::values::{Number, PAGE_SIZE, Whole};
use crate::config::{
    GroupMapping, LoginTcTarget, ScimTarget, Spanned, TargetConfig, TokenMode, UserMapping,
};

pub(super) const TARGET_TYPES: &[&str] = &["scim", "logintc"];

pub(super) const LOGINTC: Block = Block {
    place: "in `target \"logintc\"`",
    name: "target \"logintc\"",
    nodes: with_http_nodes![
        "url",
        "api-key",
        "domain",
        "token-mode",
        "concurrency",
        "rate-limit"
    ],
    repeatable: &[],
};

const TOKEN_MODES: &[(&str, TokenMode)] = &[
    ("none", TokenMode::None),
    ("with-email", TokenMode::WithEmail),
    ("without-email", TokenMode::WithoutEmail),
];

/// LoginTC's cloud, the User Sync Tool's default host.
const LOGINTC_HOST: &str = "cloud.logintc.com";

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
        match kind.as_str() {
            "logintc" => self.logintc(node, children).map(TargetConfig::LoginTc),
            _ => self.scim(node, children).map(TargetConfig::Scim),
        }
    }

    /// `target "logintc" { url ...; api-key env=...; domain "ID"; token-mode "none" }`
    fn logintc(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<LoginTcTarget> {
        let c = self.children(Some(node), Some(doc), &LOGINTC);
        let url = match c.get("url") {
            Some(n) => self.logintc_url(n),
            None => Some(Spanned::new(
                format!("https://{LOGINTC_HOST}/api"),
                node.name().span(),
            )),
        };
        let api_key = self
            .require(&c, Some(node), "api-key", "api-key env=\"LOGINTC_API_KEY\"")
            .map(|n| self.secret(n));
        let domain = self
            .require(
                &c,
                Some(node),
                "domain",
                "domain \"9120580e94f134cb7c9f27cd1e43dbc82980e152\"",
            )
            .map(|n| self.domain_id(n));
        let token_mode = c.get("token-mode").map(|n| self.choice(n, TOKEN_MODES));
        let concurrency = c
            .get("concurrency")
            .map(|n| self.leaf_whole(n, &CONCURRENCY, "concurrency 4"));
        let rate_limit = c
            .get("rate-limit")
            .map(|n| self.leaf_number(n, &RATE_LIMIT, "rate-limit 10"));
        let http = self.http_options(&c);
        Some(LoginTcTarget {
            url: url?,
            api_key: api_key??,
            domain: domain??,
            token_mode: token_mode.unwrap_or(Some(TokenMode::None))?,
            http: http?,
            concurrency: concurrency.unwrap_or(Some(4))? as u32,
            rate_limit: optional(rate_limit)?,
        })
    }

    /// `url "cloud.logintc.com"` or `url "https://host[:port][/api]"`: the API root,
    /// `https://HOST/api`. A bare host is https; the API is under `/api/` whatever is given.
    fn logintc_url(&mut self, node: &KdlNode) -> Option<Spanned<String>> {
        const EXAMPLE: &str = "url \"https://cloud.logintc.com\"";
        let value = self.leaf_string(node, EXAMPLE)?;
        let text = value.trim();
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("https://{text}")
        };
        let lower = with_scheme.to_ascii_lowercase();
        let Some(rest) = ["https://", "http://"]
            .iter()
            .find_map(|s| lower.strip_prefix(s))
        else {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                "`url` must be a host name or start with https:// or http://",
            )
            .label("unsupported scheme")
            .help(format!("write it like this: {EXAMPLE}"));
            return None;
        };
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (host, path) = rest.split_at(host_end);
        if host.is_empty() || host.contains('@') || host.chars().any(char::is_whitespace) {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                "`url` has no valid host name",
            )
            .label("no host")
            .help(format!(
                "write it like this: {EXAMPLE} (the API key goes in api-key, never in the URL)"
            ));
            return None;
        }
        if !matches!(path.trim_end_matches('/'), "" | "/api") {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                "`url` has a path other than /api",
            )
            .label("unexpected path")
            .help(format!(
                "give the host (the API is always under /api/): {EXAMPLE}"
            ));
            return None;
        }
        let scheme_len = with_scheme.len() - rest.len();
        let root = format!(
            "{}{}/api",
            &with_scheme[..scheme_len],
            &with_scheme[scheme_len..scheme_len + host.len()]
        );
        Some(Spanned::new(root, value.span))
    }

    /// `domain "ID"`: 40 hex characters, as LoginTC Admin shows a domain's id.
    fn domain_id(&mut self, node: &KdlNode) -> Option<Spanned<String>> {
        let value =
            self.leaf_string(node, "domain \"9120580e94f134cb7c9f27cd1e43dbc82980e152\"")?;
        if value.len() == 40 && value.chars().all(|c| c.is_ascii_hexdigit()) {
            return Some(Spanned::new(value.to_ascii_lowercase(), value.span));
        }
        self.report(
            ProblemKind::InvalidValue,
            value.span,
            format!(
                "`domain` is not a LoginTC domain id ({} characters; an id is 40 hexadecimal characters)",
                value.chars().count()
            ),
        )
        .label("not 40 hex characters")
        .help("copy the domain id from LoginTC Admin (Domains → the domain → Settings)");
        None
    }

    /// `disabled "inactive"` on a target without an active flag (LoginTC): the accounts
    /// could never be made inactive.
    pub(super) fn target_has_active_flag(&mut self, target: &TargetConfig, span: SourceSpan) {
        if target.capabilities().active_flag {
            return;
        }
        self.report(
            ProblemKind::Unsupported,
            span,
            "the target has no active flag, so accounts cannot be synced as inactive",
        )
        .label("disabled \"inactive\"")
        .help("use disabled \"skip\" (the default): disabled accounts leave the source, and mode \"remove\" takes them out");
    }

    /// A mapping field the target cannot hold is a config error, here, rather than an
    /// apply that fails account after account.
    pub(super) fn target_can_hold(
        &mut self,
        target: &TargetConfig,
        user: &UserMapping,
        group: Option<&GroupMapping>,
        group_span: Option<SourceSpan>,
    ) {
        let caps = target.capabilities();
        let kind = match target {
            TargetConfig::Scim(_) => "scim",
            TargetConfig::LoginTc(_) => "logintc",
        };
        let no_api = match target {
            TargetConfig::LoginTc(_) => " (the public LoginTC Admin API documents no such field)",
            TargetConfig::Scim(_) => "",
        };
        if !caps.phones {
            for phone in &user.phones {
                self.report(
                    ProblemKind::Unsupported,
                    phone.span,
                    format!("target \"{kind}\" holds no phone numbers{no_api}"),
                )
                .label("phone mapping")
                .help("remove the `phone` node from the user block");
            }
        }
        if !caps.extra_fields {
            let fields = user
                .aliases
                .iter()
                .map(|a| ("alias", a))
                .chain(user.attributes.iter().map(|a| ("attribute", a)));
            for (node, mapping) in fields {
                self.report(
                    ProblemKind::Unsupported,
                    mapping.attr.span,
                    format!("target \"{kind}\" holds no {node} fields{no_api}: it keeps a username, a name and an email"),
                )
                .label(format!("{node} mapping"))
                .help(format!("remove the `{node}` node from the user block"));
            }
            for role in &user.roles {
                self.report(
                    ProblemKind::Unsupported,
                    role.value.span,
                    format!("target \"{kind}\" has no fields a `role` could set{no_api}"),
                )
                .label("role rule")
                .help("remove the `role` node from the user block");
            }
        }
        if !caps.groups
            && let (Some(_), Some(span)) = (group, group_span)
        {
            self.report(
                ProblemKind::Unsupported,
                span,
                format!("target \"{kind}\" has no groups roster can sync"),
            )
            .label("group sync")
            .help("remove the `group` block");
        }
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
            page_size: match page_size {
                None => None,
                Some(n) => Some(n? as u32),
            },
        })
    }
}
