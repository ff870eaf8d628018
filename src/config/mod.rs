//! `roster.kdl`, parsed into typed settings.
//!
//! Every value keeps the span it came from (`Spanned<T>`), so that any later complaint about
//! it (a refused policy, an unreachable URL) can point at the line that set it. Policy values
//! may come from a policy file, a default or a flag, and say which (`PolicyValue<T>`, `At`);
//! `Config::policy_value_at` turns one into a diagnostic that quotes the right file. Parsing never
//! stops at the first problem: `parse` gathers every problem it finds, and `roster validate`
//! shows them all in one report.

mod diagnostics;
mod groups;
mod notify;
mod parse;
mod rest;

use std::path::{Path, PathBuf};

pub use diagnostics::{ConfigError, ConfigProblem, PolicyValueAt, ProblemKind};
pub use groups::{
    AttributeTest, DEFAULT_GROUP_FILTER, DEFAULT_ROLE_FIELD, GroupMapping, GroupScope,
    RoleCondition, RoleRule,
};
use miette::{NamedSource, SourceSpan};
pub use notify::{EmailNotice, Notify, NotifyOn, SmtpTls, Webhook};
pub use parse::parse;
pub use rest::{
    CherwellFilter, CherwellSource, FreshserviceList, FreshserviceSource, RestApiSource, RestAuth,
    RestOAuth, RestPaging, ServiceNowOAuth, ServiceNowSource,
};

use crate::model::Capabilities;
use crate::secret::SecretRef;

/// A value with the place in the config that set it.
///
/// Most values can only come from the config file, and carry a `SourceSpan` into it. Policy
/// values may also come from a policy file, a default or a command-line flag, and carry an
/// [`At`] instead ([`PolicyValue`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spanned<T, S = SourceSpan> {
    pub value: T,
    pub span: S,
}

impl<T, S> Spanned<T, S> {
    pub fn new(value: T, span: S) -> Self {
        Spanned { value, span }
    }
}

impl<T, S> std::ops::Deref for Spanned<T, S> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A spanned value equals a bare value when its value does (`policy.mode == Mode::Remove`).
impl<T: PartialEq, S> PartialEq<T> for Spanned<T, S> {
    fn eq(&self, other: &T) -> bool {
        self.value == *other
    }
}

/// Shown as its value, so messages read "max-removes is 10" whatever its origin.
impl<T: std::fmt::Display, S> std::fmt::Display for Spanned<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

/// A policy value, with where it was set.
pub type PolicyValue<T> = Spanned<T, At>;

/// Where a policy value was set: so that a refusal it caused ("held: 12 removes planned,
/// max-removes is 10") can point at the line, in the file that has it, or say that no file
/// has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A node in the config file or in the policy file it reads.
    File { file: ConfigFile, span: SourceSpan },
    /// Not written anywhere: roster's default (or a value built in code, as tests do).
    Default,
    /// Given on the command line for this run; `flag` is how, e.g. `--max-removes`.
    CommandLine { flag: &'static str },
}

/// Which of the files a config is read from a span points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFile {
    /// The config file itself (`Config::source_text`).
    Config,
    /// The policy file that `policy "FILE"` names (`Config::policy_text`).
    Policy,
}

/// A value built in code (tests, defaults) is written nowhere.
impl<T> From<T> for PolicyValue<T> {
    fn from(value: T) -> Self {
        Spanned::new(value, At::Default)
    }
}

/// The whole configuration, with the text it was read from (for diagnostics).
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, as given.
    pub path: PathBuf,
    /// The text of the config file, kept for error reports that point into it.
    pub source_text: NamedSource<String>,
    /// The text of the policy file the config reads, if it reads one (for the same reason).
    pub policy_text: Option<NamedSource<String>>,
    /// State store path, resolved against the config file's directory.
    pub state: PathBuf,
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub user: UserMapping,
    /// The `group` block; `None` when the config syncs no source groups.
    pub group: Option<GroupMapping>,
    /// Who owns the accounts this config manages (`owner "NAME"`, or derived from the
    /// source): roster only ever removes what this owner owns.
    pub owner: String,
    pub policy: Policy,
    /// The `notify` block; `None` when nobody is told about runs.
    pub notify: Option<Notify>,
    /// `plan-signing-key env="..."` / `file="..."`: the key plans are signed with (HMAC),
    /// so that a store that never saw a plan can still apply it (`plan::seal`).
    pub plan_signing_key: Option<Spanned<SecretRef>>,
    /// sha256 of the canonical form of the config and the policy file it reads (their
    /// values, not their comments or layout; hex): plans record it.
    pub digest: String,
}

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Ldap(LdapSource),
    ServiceNow(ServiceNowSource),
    Freshservice(FreshserviceSource),
    Rest(RestApiSource),
    Cherwell(CherwellSource),
    Csv(CsvSource),
    Ldif(LdifSource),
}

impl SourceConfig {
    /// The HTTP options of a source that is read over HTTP.
    pub fn http(&self) -> Option<&HttpOptions> {
        match self {
            SourceConfig::ServiceNow(sn) => Some(&sn.http),
            SourceConfig::Freshservice(fs) => Some(&fs.http),
            SourceConfig::Rest(rest) => Some(&rest.http),
            SourceConfig::Cherwell(cherwell) => Some(&cherwell.http),
            SourceConfig::Ldap(_) | SourceConfig::Csv(_) | SourceConfig::Ldif(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LdapSource {
    /// `ldap://` or `ldaps://` URL.
    pub url: Spanned<String>,
    pub starttls: bool,
    /// PEM file with the CA certificates to trust (instead of the system roots).
    pub ca_file: Option<Spanned<PathBuf>>,
    /// Simple bind; anonymous when absent.
    pub bind_dn: Option<Spanned<String>>,
    pub bind_password: Option<Spanned<SecretRef>>,
    /// At least one.
    pub base_dns: Vec<Spanned<String>>,
    /// Default `(objectClass=*)`.
    pub filter: Spanned<String>,
    /// 1..=1000, default 500.
    pub page_size: u32,
    /// Seconds for connect and for each operation, default 30.
    pub timeout_secs: u64,
    /// `active-directory #true`: disabled and expired accounts are handled as `disabled` says.
    pub active_directory: Option<ActiveDirectory>,
    /// `follow-referrals #true`: referrals met while reading are followed to the servers they
    /// name (same TLS settings and bind); by default they are skipped.
    pub follow_referrals: bool,
}

/// What an Active Directory source does beyond plain LDAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveDirectory {
    /// What to do with disabled (`userAccountControl` bit 0x2) and expired (`accountExpires`)
    /// accounts.
    pub disabled: DisabledAccounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledAccounts {
    /// Leave them out of the source (the default).
    Skip,
    /// Keep them, marked out of service (`SourceRecord::out_of_service`): they are synced as
    /// inactive accounts (`DesiredUser::active` false).
    Inactive,
}

/// `source "csv"`: a CSV export whose header row names the attributes.
#[derive(Debug, Clone)]
pub struct CsvSource {
    /// Resolved against the config file's directory.
    pub path: Spanned<PathBuf>,
    /// One ASCII byte, default `,`.
    pub delimiter: u8,
}

/// `source "ldif"`: an LDIF export (`slapcat`, `ldifde -f`, `ldapsearch -LLL`).
#[derive(Debug, Clone)]
pub struct LdifSource {
    /// Resolved against the config file's directory.
    pub path: Spanned<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum TargetConfig {
    Scim(ScimTarget),
    LoginTc(LoginTcTarget),
    File(FileTarget),
    XMatters(XMattersTarget),
    Luma(LumaTarget),
}

impl TargetConfig {
    /// The HTTP options of a target reached over HTTP (all but the file target).
    pub fn http(&self) -> Option<&HttpOptions> {
        match self {
            TargetConfig::Scim(scim) => Some(&scim.http),
            TargetConfig::LoginTc(logintc) => Some(&logintc.http),
            TargetConfig::XMatters(xm) => Some(&xm.http),
            TargetConfig::Luma(luma) => Some(&luma.http),
            TargetConfig::File(_) => None,
        }
    }

    /// Where the state store keeps this target's state between runs, for a target that
    /// cannot be listed (a file: the rows last written); `None` for targets that list
    /// their own accounts.
    pub fn kept_state_key(&self) -> Option<String> {
        match self {
            TargetConfig::File(file) => Some(format!("file:{}", file.path.display())),
            // The API gives no listing: the workbook last uploaded is the snapshot.
            TargetConfig::Luma(luma) => {
                Some(format!("luma:{}/{}", luma.url.value, luma.sub_domain.value))
            }
            TargetConfig::Scim(_) | TargetConfig::LoginTc(_) | TargetConfig::XMatters(_) => None,
        }
    }

    /// What this kind of target can hold and do (what `roster validate` checks a mapping
    /// against; the connector states the same).
    pub fn capabilities(&self) -> Capabilities {
        match self {
            TargetConfig::Scim(_) => Capabilities::SCIM,
            TargetConfig::LoginTc(_) => Capabilities::LOGINTC,
            TargetConfig::File(_) => Capabilities::FILE,
            TargetConfig::XMatters(_) => Capabilities::XMATTERS,
            TargetConfig::Luma(_) => Capabilities::LUMA,
        }
    }

    /// Parallel apply calls.
    pub fn concurrency(&self) -> u32 {
        match self {
            TargetConfig::Scim(scim) => scim.concurrency,
            TargetConfig::LoginTc(logintc) => logintc.concurrency,
            TargetConfig::XMatters(xm) => xm.concurrency,
            // The rows are staged in memory and written once: threads would only queue.
            TargetConfig::File(_) => 1,
            // Staged like a file, then uploaded once.
            TargetConfig::Luma(_) => 1,
        }
    }
}

/// `target "xmatters"`: the people of an xMatters instance, through its REST API (v1).
#[derive(Debug, Clone)]
pub struct XMattersTarget {
    /// The API root, `https://HOST/api/xm/1` (from a host name or a URL; https by default).
    pub url: Spanned<String>,
    /// The REST user's login (basic auth, or the OAuth password grant's username).
    pub username: Spanned<String>,
    pub password: Spanned<SecretRef>,
    /// `client-id`: OAuth (password grant, then refresh) instead of basic auth.
    pub client_id: Option<Spanned<String>>,
    pub http: HttpOptions,
    /// Parallel apply calls, default 4.
    pub concurrency: u32,
    /// Requests per second, never exceeded; unlimited when absent.
    pub rate_limit: Option<f64>,
    /// People per page when listing, default 100 (xMatters takes at most 1000).
    pub page_size: u32,
}

/// `target "luma"`: Luma's contacts, kept through its bulk upload: the accounts are written
/// into the tenant's bulk-upload template and uploaded.
#[derive(Debug, Clone)]
pub struct LumaTarget {
    /// `https://HOST`, no trailing slash: both the auth API (`/public/tenant/login`) and the
    /// export API (`/tenant/{tenantId}/contact/upload`) are under it.
    pub url: Spanned<String>,
    pub username: Spanned<String>,
    pub password: Spanned<SecretRef>,
    /// The tenant's sub-domain, sent as `subDomain` at login.
    pub sub_domain: Spanned<String>,
    /// The bulk-upload template (resolved against the config file's directory).
    pub template: Spanned<PathBuf>,
    /// The template's worksheet the contacts go in.
    pub sheet: Spanned<String>,
    /// The template's header row, as read at config time: the workbook's columns.
    pub columns: Vec<String>,
    pub http: HttpOptions,
}

/// `target "file"`: the desired state (or the changes of each apply) written to a file for
/// a system that imports files.
#[derive(Debug, Clone)]
pub struct FileTarget {
    /// Resolved against the config file's directory.
    pub path: Spanned<PathBuf>,
    pub format: FileFormat,
    pub content: FileContent,
    /// `base-dn`: where the entries of an LDIF file live (`uid=USERNAME,BASE`); LDIF only.
    pub base_dn: Option<Spanned<String>>,
}

/// How a file target's file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Xlsx,
    Ldif,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Xlsx => "xlsx",
            FileFormat::Ldif => "ldif",
        }
    }
}

/// What a file target's file holds after an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileContent {
    /// Every account roster keeps in the file (the desired state).
    All,
    /// One row per action of the apply, with an action column.
    Changes,
}

/// `target "logintc"`: one domain of a LoginTC organization, through the Admin REST API.
#[derive(Debug, Clone)]
pub struct LoginTcTarget {
    /// The API root, `https://HOST/api` (from a host name or a URL; https by default).
    pub url: Spanned<String>,
    pub api_key: Spanned<SecretRef>,
    /// The domain's id: 40 hex characters, lowercase.
    pub domain: Spanned<String>,
    pub token_mode: TokenMode,
    pub http: HttpOptions,
    /// Parallel apply calls, default 4.
    pub concurrency: u32,
    /// Requests per second, never exceeded; unlimited when absent.
    pub rate_limit: Option<f64>,
}

/// `token-mode`: whether an add issues the user a LoginTC token (the User Sync Tool's
/// `do_not_issue_token` / `issue_token_without_email`). The tool's `issue_token_with_email`
/// (`"with-email"`) is refused by `validate`: the public Admin API documents no way to have
/// the activation code emailed, and roster does not send invented fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    None,
    WithoutEmail,
}

impl TokenMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenMode::None => "none",
            TokenMode::WithoutEmail => "without-email",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScimTarget {
    /// The API root, e.g. `https://example.com/scim/v2` (no trailing slash needed).
    pub url: Spanned<String>,
    pub token: Spanned<SecretRef>,
    /// Timeout, TLS roots and proxy.
    pub http: HttpOptions,
    /// Parallel apply calls, default 4.
    pub concurrency: u32,
    /// Requests per second, never exceeded; unlimited when absent.
    pub rate_limit: Option<f64>,
    /// Page size for listing users and groups. `None` (not configured): the largest page the
    /// provider accepts, its `filter.maxResults` up to 1000, or 500 when it does not say.
    pub page_size: Option<u32>,
    /// `provider "aws"`: the documented limits of a known provider (default `generic`).
    pub provider: ScimProvider,
    /// `compatibility { ... }`: switches that override the preset and what the provider's
    /// `/ServiceProviderConfig` says.
    pub compatibility: ScimCompatibility,
}

/// A SCIM service provider whose documented limits roster knows (README, compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScimProvider {
    /// Nothing assumed: `/ServiceProviderConfig` and what answers show decide.
    #[default]
    Generic,
    /// AWS IAM Identity Center.
    Aws,
    /// Microsoft Entra ID's SCIM requirements.
    Entra,
    Okta,
    Google,
}

impl ScimProvider {
    pub const ALL: [(&'static str, ScimProvider); 5] = [
        ("generic", ScimProvider::Generic),
        ("aws", ScimProvider::Aws),
        ("entra", ScimProvider::Entra),
        ("okta", ScimProvider::Okta),
        ("google", ScimProvider::Google),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScimProvider::Generic => "generic",
            ScimProvider::Aws => "aws",
            ScimProvider::Entra => "entra",
            ScimProvider::Okta => "okta",
            ScimProvider::Google => "google",
        }
    }
}

/// The `compatibility` block of `target "scim"`: each switch, when given, overrides the
/// provider preset and `/ServiceProviderConfig`. `None`: not said here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScimCompatibility {
    /// `filter #false`: never send filters (lookups list the collection); `#true`: send
    /// them even if `/ServiceProviderConfig` says no (answers are still checked).
    pub filter: Option<bool>,
    /// `patch #false`: changes go by GET then PUT from the start.
    pub patch: Option<bool>,
    /// `value-paths #false`: member removals as `members` with a value list.
    pub value_paths: Option<bool>,
    /// `members-in-listings #false`: group answers carry no members (AWS); memberships are
    /// read with `members eq` filters instead.
    pub members_in_listings: Option<bool>,
    /// `max-page-size 100`: the largest `count` the provider accepts.
    pub max_page_size: Option<u32>,
    /// `bulk #false`: never use `/Bulk` (an initial load creates one account a request);
    /// `#true`: use it even if `/ServiceProviderConfig` does not say it is supported.
    pub bulk: Option<bool>,
}

/// What every HTTP connector (the SCIM target, the REST sources, the next target) is set up
/// with besides its URL and credentials, so that `src/http` builds all of their clients alike.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Seconds per request, default 30.
    pub timeout_secs: u64,
    /// PEM file with CA certificates trusted besides the system roots.
    pub ca_file: Option<Spanned<PathBuf>>,
    /// `proxy "http://proxy.example.com:3128"`: every request goes through it.
    pub proxy: Option<Spanned<String>>,
    /// `proxy-user` and `proxy-password`: basic auth for the proxy.
    pub proxy_user: Option<Spanned<String>>,
    pub proxy_password: Option<Spanned<SecretRef>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout_secs: 30,
            ca_file: None,
            proxy: None,
            proxy_user: None,
            proxy_password: None,
        }
    }
}

/// How a source record becomes a `DesiredUser`.
#[derive(Debug, Clone)]
pub struct UserMapping {
    pub key: Spanned<String>,
    pub username: FieldMapping,
    pub name: Option<FieldMapping>,
    pub email: Option<FieldMapping>,
    /// Source attributes whose values are work phones (all values of each, in order).
    pub phones: Vec<Spanned<String>>,
    /// `alias "ATTR" to="FIELD"`: blank values clear the target field.
    pub aliases: Vec<FieldMapping>,
    /// `attribute "ATTR" to="FIELD"`: blank values are treated as missing.
    pub attributes: Vec<FieldMapping>,
    /// `role "VALUE" ...` rules, in config order (first match per target field wins).
    pub roles: Vec<RoleRule>,
}

/// One source attribute (or expression, or static value) feeding one target field.
#[derive(Debug, Clone)]
pub struct FieldMapping {
    /// As written: a source attribute name, an expression (`"{givenName} {sn}"`), or, with
    /// `value=`, the rule's label.
    pub attr: Spanned<String>,
    /// Where the value comes from, decided from what was written.
    pub source: FieldSource,
    /// Target field name (for aliases and attributes; the fixed fields know theirs).
    pub to: Option<Spanned<String>>,
    pub normalize: Vec<Normalize>,
    /// `on-invalid=` of this field; without it the policy's `on-invalid` applies.
    pub on_invalid: Option<FieldOnInvalid>,
}

impl FieldMapping {
    /// A field read from the source attribute `attr` (no expression, no normaliser).
    pub fn attribute(attr: Spanned<String>, to: Option<Spanned<String>>) -> FieldMapping {
        FieldMapping {
            attr,
            source: FieldSource::Attribute,
            to,
            normalize: Vec::new(),
            on_invalid: None,
        }
    }
}

/// Where a mapped field's value comes from.
#[derive(Debug, Clone)]
pub enum FieldSource {
    /// The attribute named by `attr` (no brace in it).
    Attribute,
    /// `attr` is an expression (it has a brace), compiled once.
    Template(crate::expr::Template),
    /// `value="Acme Corp"`: the same for every user.
    Static(Spanned<String>),
}

/// `on-invalid=` on one field: what an invalid value of it does (an invalid email, a
/// control character, several different values, an expression that fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOnInvalid {
    /// The field's default takes its place: `default-email` / `default-name`; an alias or
    /// attribute is left out (the target keeps its value). The plan notes each one.
    Default,
    /// The record is rejected and the run goes on, whatever the policy says.
    Skip,
    /// The record is rejected and the plan refused, whatever the policy says.
    Fail,
}

/// A normaliser of `normalize="..."`, applied in the order listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    Lowercase,
    Uppercase,
    Trim,
    /// Each word's first letter upper case, the rest lower case.
    Title,
    /// Runs of whitespace become one space.
    CollapseSpaces,
    /// Transliterated to ASCII (`Zoë Łukasz` → `Zoe Lukasz`).
    Ascii,
}

impl Normalize {
    pub fn apply(self, value: &str) -> String {
        match self {
            Normalize::Lowercase => value.to_lowercase(),
            Normalize::Uppercase => value.to_uppercase(),
            Normalize::Trim => value.trim().to_string(),
            Normalize::Title => title_case(value),
            Normalize::CollapseSpaces => value.split_whitespace().collect::<Vec<_>>().join(" "),
            Normalize::Ascii => deunicode::deunicode(value),
        }
    }

    /// The word written in `normalize=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Normalize::Lowercase => "lowercase",
            Normalize::Uppercase => "uppercase",
            Normalize::Trim => "trim",
            Normalize::Title => "title",
            Normalize::CollapseSpaces => "collapse-spaces",
            Normalize::Ascii => "ascii",
        }
    }

    pub const ALL: [Normalize; 6] = [
        Normalize::Lowercase,
        Normalize::Uppercase,
        Normalize::Trim,
        Normalize::Title,
        Normalize::CollapseSpaces,
        Normalize::Ascii,
    ];
}

/// `"mary-ann o'neil"` → `"Mary-Ann O'Neil"`: a letter after a non-letter starts a word.
fn title_case(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut start = true;
    for c in value.chars() {
        if c.is_alphabetic() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = !c.is_alphanumeric();
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Adds and updates only.
    AddOnly,
    /// Also takes managed accounts missing from the source out of service.
    Remove,
    /// Also deletes managed accounts missing from the source.
    Delete,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::AddOnly => "add-only",
            Mode::Remove => "remove",
            Mode::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "add-only" => Some(Mode::AddOnly),
            "remove" => Some(Mode::Remove),
            "delete" => Some(Mode::Delete),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    Skip,
    Fail,
}

/// A limit on how many actions of one kind a plan may apply: a count or a percent of the
/// accounts it is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cap {
    Count(u64),
    Percent(f64),
}

/// `remove-after`: how long a managed account must be missing from the source before it is
/// removed or deleted (a grace period, so that a source that blinks costs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// `"72h"`: missing for this many hours (measured from the first run that missed it).
    Hours(u64),
    /// `"3d"`: missing for this many days.
    Days(u64),
    /// `"3 runs"`: missing in this many runs in a row (the first one included).
    Runs(u64),
}

impl Grace {
    /// The grace period as a length of time, when it is one.
    pub fn duration(self) -> Option<chrono::TimeDelta> {
        match self {
            Grace::Hours(h) => chrono::TimeDelta::try_hours(i64::try_from(h).ok()?),
            Grace::Days(d) => chrono::TimeDelta::try_days(i64::try_from(d).ok()?),
            Grace::Runs(_) => None,
        }
    }

    /// `"72h"`, `"3d"`, `"3 runs"` → the grace period; `None` for anything else.
    pub fn parse(text: &str) -> Option<Grace> {
        let text = text.trim();
        let whole = |digits: &str| -> Option<u64> {
            let digits = digits.trim();
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        };
        if let Some(h) = text.strip_suffix('h') {
            return whole(h).map(Grace::Hours);
        }
        if let Some(d) = text.strip_suffix('d') {
            return whole(d).map(Grace::Days);
        }
        let runs = text
            .strip_suffix(" runs")
            .or_else(|| text.strip_suffix(" run"))?;
        whole(runs).map(Grace::Runs)
    }
}

/// How the grace period is written: `72h`, `3d`, `3 runs` (as `parse` reads it).
impl std::fmt::Display for Grace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Grace::Hours(h) => write!(f, "{h}h"),
            Grace::Days(d) => write!(f, "{d}d"),
            Grace::Runs(1) => f.write_str("1 run"),
            Grace::Runs(n) => write!(f, "{n} runs"),
        }
    }
}

/// `over-cap`: what happens to the removes (or deletes) over their cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverCap {
    /// Every one of them is held for a human (the tripwire; the default).
    #[default]
    Hold,
    /// The cap's worth of them, those missing longest, go; the rest are held.
    Drip,
}

/// The safety rules of a sync. Defaults are the safe ones: add-only, no removes.
///
/// The values a refusal or a held action may be explained by are `PolicyValue`s, which
/// know where they were set.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub mode: PolicyValue<Mode>,
    /// Removes and deactivations, and deletes too unless `max_deletes` is set (what
    /// `max-removes` has always meant; a config that sets only it is not loosened).
    pub max_removes: PolicyValue<Cap>,
    pub max_remove_percent: Option<PolicyValue<f64>>,
    /// Deletes, on their own; when absent they count with the removes.
    pub max_deletes: Option<PolicyValue<Cap>>,
    /// A percent is of the accounts in the target (all of them, managed or not).
    pub max_adds: Option<PolicyValue<Cap>>,
    pub max_updates: Option<PolicyValue<Cap>>,
    /// Every user action of the plan together.
    pub max_changes: Option<PolicyValue<Cap>>,
    /// `remove-after`: the grace period before a missing account is removed.
    pub remove_after: Option<PolicyValue<Grace>>,
    /// `over-cap`: hold every remove over the cap, or drip the oldest-missing through.
    pub over_cap: PolicyValue<OverCap>,
    pub max_source_shrink_percent: PolicyValue<f64>,
    /// The target-side guard: a target listing with this many percent fewer managed
    /// accounts than the store expects is refused (default 20).
    pub max_target_shrink_percent: PolicyValue<f64>,
    pub on_invalid: OnInvalid,
    /// Template such as `"{username}@example.com"`.
    pub default_email: Option<String>,
    pub default_name: Option<String>,
    /// Membership removals allowed per group (a count, or a percent of the group's members
    /// in the target); over it, that group's removals are held. No cap when absent.
    pub max_member_removes: Option<PolicyValue<Cap>>,
    /// `group-all "NAME"`: every synced user is a member of this target group.
    pub group_all: Option<String>,
    /// How the source is read: `read`, `complete-every`, `max-incremental-age`.
    pub read: ReadPolicy,
    /// Where the policy came from (a file under policies/ or the inline block), for messages.
    pub origin: Option<SourceSpan>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::AddOnly.into(),
            max_removes: Cap::Count(0).into(),
            max_remove_percent: None,
            max_deletes: None,
            max_adds: None,
            max_updates: None,
            max_changes: None,
            remove_after: None,
            over_cap: OverCap::Hold.into(),
            max_source_shrink_percent: 20.0.into(),
            max_target_shrink_percent: 20.0.into(),
            on_invalid: OnInvalid::Skip,
            default_email: None,
            default_name: None,
            max_member_removes: None,
            group_all: None,
            read: ReadPolicy::default(),
            origin: None,
        }
    }
}

/// `read "complete" | "incremental"`: whether a run reads the whole source or only what
/// changed since the last good read (from the source's change tracking and a cookie kept in
/// the state store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Complete,
    Incremental,
}

/// How often, at the latest, an incremental schedule reads the whole source again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// `"24h"`: once the last complete read is this many seconds old.
    Seconds(u64),
    /// `"10 runs"`: at most this many reads in a row, the complete one included.
    Runs(u64),
}

impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Every::Seconds(s) => write!(f, "{}", crate::config::duration_words(*s)),
            Every::Runs(1) => write!(f, "1 run"),
            Every::Runs(n) => write!(f, "{n} runs"),
        }
    }
}

/// A span of time in words: `"7d"`, `"24h"`, `"90m"`, `"30s"` (the largest unit that divides it).
pub fn duration_words(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs > 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// The read settings of the policy. Defaults: complete reads; when incremental, a complete
/// read every 24 hours and none of a cookie older than 7 days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadPolicy {
    pub read: PolicyValue<ReadMode>,
    pub complete_every: PolicyValue<Every>,
    /// Seconds: an incremental read from a cookie older than this falls back to a complete one.
    pub max_incremental_age: PolicyValue<u64>,
}

impl Default for ReadPolicy {
    fn default() -> Self {
        ReadPolicy {
            read: ReadMode::Complete.into(),
            complete_every: Every::Seconds(24 * 3_600).into(),
            max_incremental_age: (7 * 86_400).into(),
        }
    }
}

impl Policy {
    /// `--mode` for this run.
    pub fn override_mode(&mut self, mode: Mode) {
        self.mode = Spanned::new(mode, At::CommandLine { flag: "--mode" });
    }

    /// `--incremental` for this run.
    pub fn override_incremental(&mut self) {
        self.read.read = Spanned::new(
            ReadMode::Incremental,
            At::CommandLine {
                flag: "--incremental",
            },
        );
    }

    /// `--max-removes` for this run.
    pub fn override_max_removes(&mut self, max_removes: u64) {
        self.max_removes = Spanned::new(
            Cap::Count(max_removes),
            At::CommandLine {
                flag: "--max-removes",
            },
        );
    }
}

impl Config {
    /// The text a value set at `at` is in, and its span there, for a diagnostic that points
    /// at it; `None` for a default or a command-line value, which no file has.
    pub fn source_of(&self, at: &At) -> Option<(&NamedSource<String>, SourceSpan)> {
        match *at {
            At::File {
                file: ConfigFile::Config,
                span,
            } => Some((&self.source_text, span)),
            At::File {
                file: ConfigFile::Policy,
                span,
            } => self.policy_text.as_ref().map(|text| (text, span)),
            At::Default | At::CommandLine { .. } => None,
        }
    }

    /// A diagnostic that shows where a policy value was set (`message` above the snippet,
    /// `label` at the value), for a refusal or a held action to carry as related; `None`
    /// when no file has the value.
    pub fn policy_value_at<T>(
        &self,
        value: &PolicyValue<T>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Option<PolicyValueAt> {
        let (source, span) = self.source_of(&value.span)?;
        Some(PolicyValueAt::new(source, span, message, label))
    }

    /// Every secret the config names, with the node that names it.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut secrets = Vec::new();
        match &self.source {
            SourceConfig::Ldap(ldap) => {
                secrets.extend(
                    ldap.bind_password
                        .iter()
                        .map(|s| ("bind-password", &s.value)),
                );
            }
            SourceConfig::ServiceNow(sn) => {
                secrets.push(("password", &sn.password.value));
                secrets.extend(
                    sn.oauth
                        .iter()
                        .map(|o| ("client-secret", &o.client_secret.value)),
                );
            }
            SourceConfig::Freshservice(fs) => secrets.push(("api-key", &fs.api_key.value)),
            SourceConfig::Cherwell(cherwell) => {
                secrets.push(("password", &cherwell.password.value))
            }
            SourceConfig::Rest(rest) => match &rest.auth {
                RestAuth::None => {}
                RestAuth::Basic { password, .. } => secrets.push(("password", &password.value)),
                RestAuth::Bearer { token } => secrets.push(("token", &token.value)),
                RestAuth::ApiKey { key, .. } => secrets.push(("key", &key.value)),
                RestAuth::OAuth(oauth) => {
                    secrets.push(("client-secret", &oauth.client_secret.value))
                }
            },
            SourceConfig::Csv(_) | SourceConfig::Ldif(_) => {}
        }
        match &self.target {
            TargetConfig::Scim(scim) => secrets.push(("token", &scim.token.value)),
            TargetConfig::LoginTc(logintc) => secrets.push(("api-key", &logintc.api_key.value)),
            TargetConfig::XMatters(xm) => secrets.push(("password", &xm.password.value)),
            TargetConfig::Luma(luma) => secrets.push(("password", &luma.password.value)),
            TargetConfig::File(_) => {}
        }
        secrets.extend(
            self.plan_signing_key
                .iter()
                .map(|s| ("plan-signing-key", &s.value)),
        );
        let http = self.source.http().into_iter().chain(self.target.http());
        for http in http {
            secrets.extend(
                http.proxy_password
                    .iter()
                    .map(|s| ("proxy-password", &s.value)),
            );
        }
        // Notifications never fail a run, but `validate` should still say one cannot be sent.
        if let Some(notify) = &self.notify {
            secrets.extend(
                notify
                    .emails
                    .iter()
                    .filter_map(|e| e.password.as_ref())
                    .map(|s| ("smtp-password", &s.value)),
            );
            secrets.extend(notify.webhooks.iter().filter_map(|w| match w {
                Webhook::Secret(s) => Some(("webhook", &s.value)),
                Webhook::Url(_) => None,
            }));
            secrets.extend(
                notify
                    .http
                    .proxy_password
                    .iter()
                    .map(|s| ("proxy-password", &s.value)),
            );
        }
        secrets
    }

    /// Reads and parses a config file; every problem found is in the error.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        parse(path, &text)
    }
}

#[cfg(test)]
mod tests;
