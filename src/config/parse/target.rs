//! The `target` block: which kind of target, and the settings of the SCIM and LoginTC
//! targets; and the check that the user mapping asks for nothing the target cannot hold.

use std::path::PathBuf;

use kdl::{KdlDocument, KdlNode};
use miette::SourceSpan;

use super::checker::{Block, Checker, Children, ProblemKind, optional};
use super::http::with_http_nodes;
use super::values::{Number, PAGE_SIZE, Whole};
use crate::config::{
    FileContent, FileFormat, FileTarget, GroupMapping, LoginTcTarget, LumaTarget,
    ScimCompatibility, ScimProvider, ScimTarget, Spanned, TargetConfig, TokenMode, UserMapping,
    XMattersTarget,
};
use crate::target::xmatters::{LICENSE_TYPES, XMATTERS_FIELDS};

pub(super) const TARGET_TYPES: &[&str] = &["scim", "logintc", "file", "xmatters", "luma"];

pub(super) const LUMA: Block = Block {
    place: "in `target \"luma\"`",
    name: "target \"luma\"",
    nodes: with_http_nodes![
        "url",
        "username",
        "password",
        "sub-domain",
        "template",
        "sheet"
    ],
    repeatable: &[],
};

pub(super) const XMATTERS: Block = Block {
    place: "in `target \"xmatters\"`",
    name: "target \"xmatters\"",
    nodes: with_http_nodes![
        "url",
        "username",
        "password",
        "client-id",
        "concurrency",
        "rate-limit",
        "page-size"
    ],
    repeatable: &[],
};

/// xMatters pages people at most 1000 at a time.
const XMATTERS_PAGE_SIZE: Whole = Whole {
    min: 1,
    max: 1000,
    help: "`page-size` is a whole number from 1 to 1000 (xMatters' largest `limit`)",
};

pub(super) const FILE: Block = Block {
    place: "in `target \"file\"`",
    name: "target \"file\"",
    nodes: &["path", "format", "content", "base-dn"],
    repeatable: &[],
};

const FILE_FORMATS: &[(&str, FileFormat)] = &[
    ("csv", FileFormat::Csv),
    ("xlsx", FileFormat::Xlsx),
    ("ldif", FileFormat::Ldif),
];

const FILE_CONTENTS: &[(&str, FileContent)] =
    &[("all", FileContent::All), ("changes", FileContent::Changes)];

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

/// The User Sync Tool's three modes; `with-email` (`None` here) is known but refused: the
/// LoginTC Admin API documents no way to have a token's activation code emailed.
const TOKEN_MODES: &[(&str, Option<TokenMode>)] = &[
    ("none", Some(TokenMode::None)),
    ("with-email", None),
    ("without-email", Some(TokenMode::WithoutEmail)),
];

/// LoginTC's cloud, the User Sync Tool's default host.
const LOGINTC_HOST: &str = "cloud.logintc.com";

pub(super) const SCIM: Block = Block {
    place: "in `target \"scim\"`",
    name: "target \"scim\"",
    nodes: with_http_nodes![
        "url",
        "token",
        "concurrency",
        "rate-limit",
        "page-size",
        "provider",
        "compatibility"
    ],
    repeatable: &[],
};

pub(super) const COMPATIBILITY: Block = Block {
    place: "in `compatibility`",
    name: "compatibility",
    nodes: &[
        "filter",
        "patch",
        "value-paths",
        "members-in-listings",
        "max-page-size",
        "bulk",
    ],
    repeatable: &[],
};

const MAX_PAGE_SIZE: Whole = Whole {
    min: 1,
    max: 1000,
    help: "`max-page-size` is a whole number from 1 to 1000",
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
            "file" => self.file_target(node, children).map(TargetConfig::File),
            "xmatters" => self.xmatters(node, children).map(TargetConfig::XMatters),
            "luma" => self.luma(node, children).map(TargetConfig::Luma),
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
        let token_mode = c.get("token-mode").map(|n| self.token_mode(n));
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

    /// `token-mode "none" | "without-email"`; `"with-email"` is refused, with why.
    fn token_mode(&mut self, node: &KdlNode) -> Option<TokenMode> {
        match self.choice(node, TOKEN_MODES)? {
            Some(mode) => Some(mode),
            None => {
                let span = node
                    .entries()
                    .first()
                    .map_or(node.name().span(), |e| e.span());
                self.report(
                    ProblemKind::Unsupported,
                    span,
                    "the LoginTC Admin API documents no way to email a token's activation code \
                     (PUT /domains/{domain}/users/{user}/token takes no body)",
                )
                .label("token-mode \"with-email\"")
                .help(
                    "use token-mode \"without-email\" (the token is issued, pending, and the user \
                     enrolls with its activation code, e.g. from the enrollment email LoginTC Admin \
                     sends), or \"none\"",
                );
                None
            }
        }
    }

    /// `target "xmatters" { url ...; username ...; password env=...; client-id ... }`
    fn xmatters(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<XMattersTarget> {
        const URL: &str = "url \"https://acme.xmatters.com\"";
        let c = self.children(Some(node), Some(doc), &XMATTERS);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.api_root(n, URL, "/api/xm/1", "the API is always under /api/xm/1/"));
        let username = self
            .require(&c, Some(node), "username", "username \"roster.sync\"")
            .map(|n| self.leaf_string(n, "username \"roster.sync\""));
        let password = self
            .require(&c, Some(node), "password", "password env=\"XM_PASSWORD\"")
            .map(|n| self.secret(n));
        let client_id = c
            .get("client-id")
            .map(|n| self.leaf_string(n, "client-id \"...\""));
        let concurrency = c
            .get("concurrency")
            .map(|n| self.leaf_whole(n, &CONCURRENCY, "concurrency 4"));
        let rate_limit = c
            .get("rate-limit")
            .map(|n| self.leaf_number(n, &RATE_LIMIT, "rate-limit 10"));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &XMATTERS_PAGE_SIZE, "page-size 100"));
        let http = self.http_options(&c);
        Some(XMattersTarget {
            url: url??,
            username: username??,
            password: password??,
            client_id: optional(client_id)?,
            http: http?,
            concurrency: concurrency.unwrap_or(Some(4))? as u32,
            rate_limit: optional(rate_limit)?,
            page_size: page_size.unwrap_or(Some(100))? as u32,
        })
    }

    /// `target "luma" { url ...; username ...; password env=...; sub-domain ...; template ...;
    /// sheet ... }`. The template is read here, so that `validate` says when it is missing,
    /// unreadable, or lacks the sheet or a header row.
    fn luma(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<LumaTarget> {
        const URL: &str = "url \"https://acme.example-luma.com\"";
        const TEMPLATE: &str = "template \"Template_for_Bulk_Upload.xlsx\"";
        let c = self.children(Some(node), Some(doc), &LUMA);
        let url = self
            .require(&c, Some(node), "url", URL)
            .map(|n| self.api_root(n, URL, "", "both APIs are under the host"));
        let username = self
            .require(
                &c,
                Some(node),
                "username",
                "username \"roster@example.com\"",
            )
            .map(|n| self.leaf_string(n, "username \"roster@example.com\""));
        let password = self
            .require(&c, Some(node), "password", "password env=\"LUMA_PASSWORD\"")
            .map(|n| self.secret(n));
        let sub_domain = self
            .require(&c, Some(node), "sub-domain", "sub-domain \"acme\"")
            .map(|n| self.leaf_string(n, "sub-domain \"acme\""));
        let template = self
            .require(&c, Some(node), "template", TEMPLATE)
            .map(|n| self.leaf_path(n, TEMPLATE));
        let sheet = self
            .require(&c, Some(node), "sheet", "sheet \"Contacts\"")
            .map(|n| self.leaf_string(n, "sheet \"Contacts\""));
        let http = self.http_options(&c);
        let template = template??;
        let sheet = sheet??;
        let columns = match crate::target::luma::template_columns(&template, &sheet) {
            Ok(columns) => columns,
            Err(message) => {
                self.report(ProblemKind::InvalidValue, template.span, message)
                    .label("the bulk-upload template")
                    .help(
                        "download the tenant's bulk-upload template from Luma and give its path, \
                         relative to roster.kdl, and the name of its contacts sheet",
                    );
                return None;
            }
        };
        Some(LumaTarget {
            url: url??,
            username: username??,
            password: password??,
            sub_domain: sub_domain??,
            template,
            sheet,
            columns,
            http: http?,
        })
    }

    /// The columns a Luma mapping writes must be the template's: `username` (and `name`,
    /// `email`, `phone` when mapped) and every `alias` / `attribute` / `role` `to=` name a
    /// header of the template (case-insensitively). Missing ones are one error at the user
    /// block's key, naming them and listing the template's columns.
    fn luma_columns(&mut self, luma: &LumaTarget, user: &UserMapping) {
        let has = |name: &str| luma.columns.iter().any(|c| c.eq_ignore_ascii_case(name));
        let mut missing: Vec<(String, SourceSpan)> = Vec::new();
        let mut want = |name: &str, span: SourceSpan| {
            if !has(name) && !missing.iter().any(|(m, _)| m.eq_ignore_ascii_case(name)) {
                missing.push((name.to_string(), span));
            }
        };
        want("username", user.username.attr.span);
        if let Some(name) = &user.name {
            want("name", name.attr.span);
        }
        if let Some(email) = &user.email {
            want("email", email.attr.span);
        }
        if let Some(phone) = user.phones.first() {
            want("phone", phone.span);
        }
        let mappings = user.aliases.iter().chain(user.attributes.iter());
        for to in mappings.filter_map(|m| m.to.as_ref()) {
            want(to, to.span);
        }
        for role in &user.roles {
            want(&role.to, role.to.span);
        }
        let Some((_, span)) = missing.first() else {
            return;
        };
        let names: Vec<String> = missing.iter().map(|(m, _)| format!("`{m}`")).collect();
        self.report(
            ProblemKind::InvalidValue,
            *span,
            format!(
                "the Luma template {} (sheet \"{}\") has no column {}; its columns are: {}",
                luma.template.display(),
                luma.sheet.as_str(),
                names.join(", "),
                luma.columns.join(", ")
            ),
        )
        .label("not a template column")
        .help(
            "map each field to a column of the template (`attribute \"givenName\" to=\"First Name\"`), \
             or remove it; username, name, email and phone go to the columns of those names",
        );
    }

    /// A host name or an http(s) URL whose path is empty or `root`: the API root,
    /// `https://HOST{root}` (https unless another scheme is given).
    fn api_root(
        &mut self,
        node: &KdlNode,
        example: &str,
        root: &str,
        where_: &str,
    ) -> Option<Spanned<String>> {
        let value = self.leaf_string(node, example)?;
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
            .help(format!("write it like this: {example}"));
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
                "write it like this: {example} (credentials never go in the URL)"
            ));
            return None;
        }
        let path = path.trim_end_matches('/');
        if !path.is_empty() && path != root {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                format!("`url` has a path other than {root}"),
            )
            .label("unexpected path")
            .help(format!("give the host ({where_}): {example}"));
            return None;
        }
        let scheme_len = with_scheme.len() - rest.len();
        let api = format!(
            "{}{}{root}",
            &with_scheme[..scheme_len],
            &with_scheme[scheme_len..scheme_len + host.len()]
        );
        Some(Spanned::new(api, value.span))
    }

    /// The person fields an xMatters mapping may write, and the licence types a role or a
    /// constant may set: a name xMatters does not have is refused here, not by the server
    /// account after account.
    fn xmatters_fields(&mut self, user: &UserMapping) {
        let mappings = user.aliases.iter().chain(user.attributes.iter());
        let named = mappings
            .filter_map(|m| m.to.as_ref())
            .chain(user.roles.iter().map(|r| &r.to));
        for to in named {
            if XMATTERS_FIELDS.contains(&to.as_str()) {
                continue;
            }
            let guess = XMATTERS_FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(to))
                .map(|f| format!("did you mean `{f}`? "))
                .unwrap_or_default();
            self.report(
                ProblemKind::Unsupported,
                to.span,
                format!(
                    "xMatters people have no field `{}` roster can set",
                    to.as_str()
                ),
            )
            .label("not an xMatters person field")
            .help(format!(
                "{guess}the fields are {}",
                XMATTERS_FIELDS.join(", ")
            ));
        }
        if let Some(name) = &user.name {
            let split = user
                .aliases
                .iter()
                .chain(user.attributes.iter())
                .filter_map(|m| m.to.as_ref())
                .chain(user.roles.iter().map(|r| &r.to))
                .find(|to| matches!(to.as_str(), "firstName" | "lastName"));
            if let Some(to) = split {
                self.report(
                    ProblemKind::InvalidValue,
                    to.span,
                    format!(
                        "`name` and `{}` both set an xMatters name: roster splits `name` into firstName and lastName",
                        to.as_str()
                    ),
                )
                .label("set twice")
                .help(format!(
                    "map either `name` (`name \"{}\"`) or firstName and lastName",
                    name.attr.as_str()
                ));
            }
        }
        for role in user.roles.iter().filter(|r| r.to.as_str() == "licenseType") {
            if LICENSE_TYPES.contains(&role.value.as_str()) {
                continue;
            }
            let guess = match role
                .value
                .to_ascii_lowercase()
                .replace(['_', ' '], "")
                .as_str()
            {
                "fulluser" => "write FULL_USER; ",
                "stakeholderuser" | "stakeholder" => "write STAKEHOLDER_USER; ",
                _ => "",
            };
            self.report(
                ProblemKind::InvalidValue,
                role.value.span,
                format!("xMatters has no licence type \"{}\"", role.value.as_str()),
            )
            .label("not a licence type")
            .help(format!(
                "{guess}the licence types are {}",
                LICENSE_TYPES.join(", ")
            ));
        }
    }

    /// `target "file" { path "export/people.csv"; format "csv"; content "all" }`
    fn file_target(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<FileTarget> {
        const PATH: &str = "path \"export/people.csv\"";
        let c = self.children(Some(node), Some(doc), &FILE);
        let path_node = self.require(&c, Some(node), "path", PATH);
        let path = path_node.and_then(|n| self.leaf_path(n, PATH));
        let format = match c.get("format") {
            Some(n) => self.choice(n, FILE_FORMATS),
            None => match (&path, path_node) {
                (Some(path), Some(n)) => self.format_of(path, n),
                _ => None,
            },
        };
        let content = c.get("content").map(|n| self.choice(n, FILE_CONTENTS));
        let base_dn = c
            .get("base-dn")
            .and_then(|n| self.leaf_string(n, "base-dn \"ou=People,dc=example,dc=com\""));
        let format = format?;
        match (&base_dn, format) {
            (None, FileFormat::Ldif) => {
                self.report(
                    ProblemKind::MissingNode,
                    node.name().span(),
                    "an LDIF file target needs `base-dn`: each entry is written as uid=USERNAME,BASE-DN",
                )
                .label("no `base-dn` here")
                .help("add base-dn \"ou=People,dc=example,dc=com\" to target \"file\"");
                return None;
            }
            (Some(dn), FileFormat::Csv | FileFormat::Xlsx) => {
                self.report(
                    ProblemKind::InvalidValue,
                    dn.span,
                    format!(
                        "`base-dn` applies only to LDIF files; this file is {}",
                        format.as_str()
                    ),
                )
                .label("not used")
                .help("remove `base-dn`, or write format \"ldif\"");
                return None;
            }
            _ => {}
        }
        Some(FileTarget {
            path: path?,
            format,
            content: content.unwrap_or(Some(FileContent::All))?,
            base_dn,
        })
    }

    /// The format a file target's path names by its extension, when `format` is not given.
    fn format_of(&mut self, path: &Spanned<PathBuf>, node: &KdlNode) -> Option<FileFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let found = ext
            .as_deref()
            .and_then(|e| FILE_FORMATS.iter().find(|(n, _)| *n == e));
        if let Some((_, format)) = found {
            return Some(*format);
        }
        self.report(
            ProblemKind::MissingNode,
            path.span,
            "the file's extension names no format roster writes (.csv, .xlsx, .ldif)",
        )
        .label("no known extension")
        .help(format!(
            "add format \"csv\", \"xlsx\" or \"ldif\" beside `{}`",
            node.name().value()
        ));
        None
    }

    /// `url "cloud.logintc.com"` or `url "https://host[:port][/api]"`: the API root,
    /// `https://HOST/api`. A bare host is https; the API is under `/api/` whatever is given.
    fn logintc_url(&mut self, node: &KdlNode) -> Option<Spanned<String>> {
        self.api_root(
            node,
            "url \"https://cloud.logintc.com\"",
            "/api",
            "the API is always under /api/",
        )
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

    /// Group sync (`group-all`, here) on a target without groups: refused at `span`, rather
    /// than a plan that stops at the first group call.
    pub(super) fn target_has_groups(
        &mut self,
        target: &TargetConfig,
        span: SourceSpan,
        what: &str,
    ) {
        if target.capabilities().groups {
            return;
        }
        let kind = target_kind(target);
        self.report(
            ProblemKind::Unsupported,
            span,
            format!("target \"{kind}\" has no groups roster can sync, so `{what}` cannot be kept"),
        )
        .label(format!("{what} on a target without groups"))
        .help(format!("remove `{what}` from the policy"));
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
        let kind = target_kind(target);
        let no_api = match target {
            TargetConfig::LoginTc(_) => " (the public LoginTC Admin API documents no such field)",
            TargetConfig::Scim(_)
            | TargetConfig::File(_)
            | TargetConfig::XMatters(_)
            | TargetConfig::Luma(_) => "",
        };
        if let TargetConfig::Luma(luma) = target {
            self.luma_columns(luma, user);
        }
        if let TargetConfig::File(file) = target {
            self.file_columns(file, user);
        }
        if let TargetConfig::XMatters(_) = target {
            self.xmatters_fields(user);
        }
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

    /// The columns of a file target: every field the mapping writes is one, so two fields
    /// of one name, a name of a fixed column, or (in LDIF) a name that is no attribute
    /// description would make a file the importing system misreads.
    fn file_columns(&mut self, file: &FileTarget, user: &UserMapping) {
        let mut seen: Vec<String> = crate::target::file::FIXED_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mappings = user.aliases.iter().chain(user.attributes.iter());
        for to in mappings.filter_map(|m| m.to.as_ref()) {
            let lower = to.to_ascii_lowercase();
            if seen.contains(&lower) {
                self.report(
                    ProblemKind::InvalidValue,
                    to.span,
                    format!("the file would have two columns named `{}`", to.as_str()),
                )
                .label("column named twice")
                .help(format!(
                    "give each field a name of its own; {} are roster's own columns",
                    crate::target::file::FIXED_COLUMNS.join(", ")
                ));
                continue;
            }
            if file.format == FileFormat::Ldif && !crate::target::file::is_ldif_attribute(to) {
                self.report(
                    ProblemKind::InvalidValue,
                    to.span,
                    format!(
                        "`{}` is not an LDAP attribute name, so it cannot be an LDIF attribute",
                        to.as_str()
                    ),
                )
                .label("not an attribute name")
                .help(
                    "an attribute name starts with a letter and has only letters, digits and `-`",
                );
            }
            seen.push(lower);
        }
        // Role rules write their field too; several rules naming one field are one column.
        let mut roles_seen: Vec<String> = Vec::new();
        for role in &user.roles {
            let lower = role.to.to_ascii_lowercase();
            if roles_seen.contains(&lower) {
                continue;
            }
            roles_seen.push(lower.clone());
            if crate::target::file::FIXED_COLUMNS.contains(&lower.as_str()) {
                self.report(
                    ProblemKind::InvalidValue,
                    role.to.span,
                    format!("`{}` is one of roster's own columns", role.to.as_str()),
                )
                .label("column named twice")
                .help("give the role's field a name of its own");
            } else if file.format == FileFormat::Ldif
                && !crate::target::file::is_ldif_attribute(&role.to)
            {
                self.report(
                    ProblemKind::InvalidValue,
                    role.to.span,
                    format!(
                        "`{}` is not an LDAP attribute name, so it cannot be an LDIF attribute",
                        role.to.as_str()
                    ),
                )
                .label("not an attribute name")
                .help(
                    "an attribute name starts with a letter and has only letters, digits and `-`",
                );
            }
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
        let provider = c
            .get("provider")
            .map(|n| self.choice(n, &ScimProvider::ALL));
        let compatibility = c.get("compatibility").map(|n| self.compatibility(n));
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
            provider: provider.unwrap_or(Some(ScimProvider::Generic))?,
            compatibility: compatibility.unwrap_or(Some(ScimCompatibility::default()))?,
        })
    }

    /// `compatibility { filter #false; patch #false; value-paths #false;
    /// members-in-listings #false; max-page-size 100; bulk #false }`
    fn compatibility(&mut self, node: &KdlNode) -> Option<ScimCompatibility> {
        let doc = self.block(node, "compatibility")?;
        let c = self.children(Some(node), Some(doc), &COMPATIBILITY);
        let flag = |checker: &mut Self, name: &str| c.get(name).map(|n| checker.leaf_bool(n));
        let filter = flag(self, "filter");
        let patch = flag(self, "patch");
        let value_paths = flag(self, "value-paths");
        let members_in_listings = flag(self, "members-in-listings");
        let bulk = flag(self, "bulk");
        let max_page_size = c
            .get("max-page-size")
            .map(|n| self.leaf_whole(n, &MAX_PAGE_SIZE, "max-page-size 100"));
        Some(ScimCompatibility {
            filter: optional(filter)?,
            patch: optional(patch)?,
            value_paths: optional(value_paths)?,
            members_in_listings: optional(members_in_listings)?,
            max_page_size: optional(max_page_size)?.map(|n| n as u32),
            bulk: optional(bulk)?,
        })
    }
}

/// The target's type as a config names it (`target "logintc"`).
fn target_kind(target: &TargetConfig) -> &'static str {
    match target {
        TargetConfig::Scim(_) => "scim",
        TargetConfig::LoginTc(_) => "logintc",
        TargetConfig::File(_) => "file",
        TargetConfig::XMatters(_) => "xmatters",
        TargetConfig::Luma(_) => "luma",
    }
}
