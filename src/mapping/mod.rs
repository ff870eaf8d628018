//! Mapping: a `SourceRecord` becomes a `DesiredUser`, or a `Reject` that says why not.
//!
//! The field rules live here: normalisation, defaults from templates, aliases whose blank
//! value means "clear", phones gathered from several attributes, validation of the
//! required fields, and role rules (a target field set by the first rule that matches).
//! Pure: no I/O.
//!
//! Odd values are settled here too, so that what reaches the store is what the target gets
//! and what a reviewer sees (issue 11.8):
//! - the key, username, name and email are trimmed of leading and trailing whitespace,
//!   whatever `normalize` says: a username `" alice "` must not become a second, look-alike
//!   account beside `alice` while its key is trimmed;
//! - a value roster would send that holds a control character (NUL, CR, LF, ESC, any other
//!   C0 or C1 character), a Unicode line or paragraph separator or a text-direction control
//!   rejects the record, naming the attribute; `attribute ... to=` values, which may be
//!   multi-line text (a postal address), may hold TAB, LF and CR, never the rest;
//! - a single-valued field (key, username, name, email, an alias, an attribute) whose
//!   attribute has several different values (after normalisation; blank values do not
//!   count, equal ones collapse, emails compare ignoring case) rejects the record: the
//!   directory does not say which one is meant, and LDAP does not even keep values in order.
//!   Phones are many by design.
//!
//! Role rules with `in-group=` need the source's groups while users are mapped: the groups
//! are read first and handed over as a `GroupIndex` (`with_groups`), so that a role is an
//! ordinary field value by the time the user is stored and flows through the usual update
//! path.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::config::{
    FieldMapping, FieldOnInvalid, FieldSource, Normalize, OnInvalid, Policy, RoleCondition,
    RoleRule, UserMapping,
};
use crate::membership::GroupIndex;
use crate::model::{Capabilities, DesiredUser, FieldValue, Reject, SourceRecord, phone_digits};

/// The mapping of a config, ready to apply to records.
#[derive(Debug, Clone)]
pub struct Mapper {
    mapping: UserMapping,
    default_email: Option<String>,
    default_name: Option<String>,
    /// The source's groups, for `in-group=` roles; without them no `in-group=` rule matches.
    groups: Option<Arc<GroupIndex>>,
    /// What the target takes (lengths, a required email): a user it would refuse is a
    /// reject at plan time, not a failed apply.
    target: Option<Capabilities>,
    /// The policy's `on-invalid`, which a field's own `on-invalid=` overrides.
    on_invalid: OnInvalid,
    /// What the fields' `on-invalid=` did, shared by the clones that map in parallel.
    outcomes: Arc<Mutex<Outcomes>>,
}

/// What fields' `on-invalid=` settings did during a read (see `Mapper::outcomes`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcomes {
    /// Per field, how many invalid values were replaced by the default, and the first few
    /// records with their reasons (in record order as read).
    pub defaulted: BTreeMap<&'static str, (u64, Vec<String>)>,
    /// Rejects of fields with `on-invalid="fail"`: `origin: reason`.
    pub fatal: Vec<String>,
    /// Origins rejected by a field with `on-invalid="skip"` while the policy says `fail`:
    /// those do not refuse the plan.
    pub skipped: HashSet<String>,
}

/// How many example records a defaulted-field note names.
const EXAMPLES: usize = 3;

impl Mapper {
    pub fn new(mapping: &UserMapping, policy: &Policy) -> Mapper {
        Mapper {
            mapping: mapping.clone(),
            default_email: policy.default_email.clone(),
            default_name: policy.default_name.clone(),
            groups: None,
            target: None,
            on_invalid: policy.on_invalid,
            outcomes: Arc::default(),
        }
    }

    /// What the fields' `on-invalid=` did in the records mapped so far.
    pub fn outcomes(&self) -> Outcomes {
        self.outcomes
            .lock()
            .map(|o| o.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Plan notes for values replaced by a default (`on-invalid="default"`).
    pub fn notes(&self) -> Vec<String> {
        self.outcomes()
            .defaulted
            .iter()
            .map(|(what, (count, examples))| {
                let replacement = match *what {
                    "email" => "default-email",
                    "name" => "default-name",
                    _ => "nothing (the target keeps its value)",
                };
                format!(
                    "{what}: {} replaced by {replacement} (on-invalid=\"default\"): {}{}",
                    crate::render::plural(*count, "invalid value was", "invalid values were"),
                    examples.join("; "),
                    if *count > examples.len() as u64 {
                        "; ..."
                    } else {
                        ""
                    }
                )
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A field's invalid value replaced by its default: noted for the plan.
    fn defaulted(&self, record: &SourceRecord, what: &'static str, reason: &str) {
        let mut o = self.lock();
        let entry = o.defaulted.entry(what).or_default();
        entry.0 += 1;
        if entry.1.len() < EXAMPLES {
            entry.1.push(format!("{}: {reason}", record.origin));
        }
    }

    /// The reject of a field with its own `on-invalid=`, remembered when it decides the run.
    fn field_reject(&self, field: Option<FieldOnInvalid>, reject: Reject) -> Reject {
        match field {
            Some(FieldOnInvalid::Fail) => {
                let line = format!("{}: {}", reject.origin, reject.reason);
                self.lock().fatal.push(line);
            }
            Some(FieldOnInvalid::Skip) if self.on_invalid == OnInvalid::Fail => {
                self.lock().skipped.insert(reject.origin.clone());
            }
            _ => {}
        }
        reject
    }

    /// The mapper that rejects users the target would refuse.
    pub fn for_target(mut self, capabilities: Capabilities) -> Mapper {
        self.target = Some(capabilities);
        self
    }

    /// The mapper with the source's groups known, for `in-group=` role rules.
    pub fn with_groups(mut self, groups: Arc<GroupIndex>) -> Mapper {
        self.groups = Some(groups);
        self
    }

    /// The source attributes the mapping reads (lowercase, each once), to request them.
    pub fn attributes(&self) -> Vec<String> {
        let m = &self.mapping;
        let mut names: Vec<String> = vec![m.key.value.clone()];
        for f in std::iter::once(&m.username)
            .chain(&m.name)
            .chain(&m.email)
            .chain(&m.aliases)
            .chain(&m.attributes)
        {
            match &f.source {
                FieldSource::Attribute => names.push(f.attr.value.clone()),
                FieldSource::Template(t) => names.extend(t.variables().iter().cloned()),
                FieldSource::Static(_) => {}
            }
        }
        names.extend(m.phones.iter().map(|p| p.value.clone()));
        for r in &m.roles {
            match &r.condition {
                RoleCondition::Attribute { attr, .. } => names.push(attr.value.clone()),
                RoleCondition::Expression(t) => names.extend(t.variables().iter().cloned()),
                _ => {}
            }
        }
        for template in self.default_email.iter().chain(&self.default_name) {
            names.extend(
                placeholders(template)
                    .into_iter()
                    .filter(|p| !matches!(*p, "username" | "key" | "name"))
                    .map(str::to_string),
            );
        }
        let mut seen = std::collections::HashSet::new();
        names
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .filter(|n| seen.insert(n.clone()))
            .collect()
    }

    /// The target fields the mapping writes besides the fixed ones (aliases and attributes).
    pub fn target_fields(&self) -> Vec<String> {
        let m = &self.mapping;
        let mut fields: Vec<String> = m
            .aliases
            .iter()
            .chain(&m.attributes)
            .filter_map(|f| f.to.as_ref().map(|t| t.value.clone()))
            .collect();
        for role in &m.roles {
            if !fields.contains(&role.to.value) {
                fields.push(role.to.value.clone());
            }
        }
        fields
    }

    pub fn map(&self, record: &SourceRecord) -> Result<DesiredUser, Reject> {
        let m = &self.mapping;
        let reject = |key: Option<&str>, username: Option<&str>, reason: String| Reject {
            origin: record.origin.clone(),
            key: key.map(str::to_string),
            username: username.map(str::to_string),
            reason,
        };
        let key = match single(record, &m.key.value, &[], &KEY) {
            Ok(Some(key)) => key,
            Ok(None) => {
                return Err(reject(
                    None,
                    None,
                    format!("no key: attribute {} is missing or empty", m.key.value),
                ));
            }
            // Without one key no account can be told to be this record's; its username
            // (when it has a clean one) still protects the account that carries it.
            Err(reason) => {
                let username = value(record, &m.username, &USERNAME).ok().flatten();
                return Err(reject(None, username.as_deref(), reason));
            }
        };
        let key = key.as_str();
        let username = match value(record, &m.username, &USERNAME) {
            Ok(Some(username)) => username,
            Ok(None) => {
                return Err(self.field_reject(
                    m.username.on_invalid,
                    reject(
                        Some(key),
                        None,
                        format!(
                            "no username: attribute {} is missing or empty",
                            m.username.attr.value
                        ),
                    ),
                ));
            }
            Err(reason) => {
                return Err(
                    self.field_reject(m.username.on_invalid, reject(Some(key), None, reason))
                );
            }
        };
        let mut user = DesiredUser {
            key: key.to_string(),
            username,
            // An account the source keeps but has out of service is synced as inactive.
            active: !record.out_of_service,
            ..DesiredUser::default()
        };

        if let Some(field) = &m.name {
            let use_default =
                field.on_invalid == Some(FieldOnInvalid::Default) && self.default_name.is_some();
            let name = match value(record, field, &NAME) {
                Ok(name) => name,
                Err(reason) if use_default => {
                    self.defaulted(record, "name", &reason);
                    None
                }
                Err(reason) => {
                    return Err(self.field_reject(
                        field.on_invalid,
                        reject(Some(key), Some(&user.username), reason),
                    ));
                }
            };
            user.name = match name {
                Some(name) => Some(name),
                None => match &self.default_name {
                    Some(template) => {
                        let name = match render(template, record, &user) {
                            Ok(name) => name.trim().to_string(),
                            Err(missing) => {
                                return Err(reject(
                                    Some(key),
                                    Some(&user.username),
                                    format!("default-name (name): {missing}"),
                                ));
                            }
                        };
                        if let Some(odd) = odd_character(&name, Lines::Single) {
                            return Err(reject(
                                Some(key),
                                Some(&user.username),
                                format!("default-name (name) {odd}"),
                            ));
                        }
                        Some(name).filter(|n| !n.is_empty())
                    }
                    None => None,
                },
            };
            if user.name.is_none() {
                return Err(self.field_reject(
                    field.on_invalid,
                    reject(
                        Some(key),
                        Some(&user.username),
                        format!(
                            "no name: attribute {} is missing or empty and there is no default-name",
                            field.attr.value
                        ),
                    ),
                ));
            }
        }
        if let Some(field) = &m.email {
            let use_default =
                field.on_invalid == Some(FieldOnInvalid::Default) && self.default_email.is_some();
            let email = match value(record, field, &EMAIL) {
                Ok(Some(email)) if use_default && !is_email(&email) => {
                    self.defaulted(
                        record,
                        "email",
                        &format!("invalid email {email:?} (from {})", field.attr.value),
                    );
                    None
                }
                Ok(email) => email,
                Err(reason) if use_default => {
                    self.defaulted(record, "email", &reason);
                    None
                }
                Err(reason) => {
                    return Err(self.field_reject(
                        field.on_invalid,
                        reject(Some(key), Some(&user.username), reason),
                    ));
                }
            };
            let email = match email {
                Some(email) => Some(email),
                None => match &self.default_email {
                    Some(template) => {
                        let email = match render(template, record, &user) {
                            Ok(email) => email.trim().to_string(),
                            Err(missing) => {
                                return Err(reject(
                                    Some(key),
                                    Some(&user.username),
                                    format!("default-email (email): {missing}"),
                                ));
                            }
                        };
                        if let Some(odd) = odd_character(&email, Lines::Single) {
                            return Err(reject(
                                Some(key),
                                Some(&user.username),
                                format!("default-email (email) {odd}"),
                            ));
                        }
                        Some(email)
                    }
                    None => None,
                },
            };
            match email {
                None => {
                    return Err(self.field_reject(
                        field.on_invalid,
                        reject(
                            Some(key),
                            Some(&user.username),
                            format!(
                                "no email: attribute {} is missing or empty and there is no default-email",
                                field.attr.value
                            ),
                        ),
                    ));
                }
                Some(email) if !is_email(&email) => {
                    return Err(self.field_reject(
                        field.on_invalid,
                        reject(
                            Some(key),
                            Some(&user.username),
                            format!("invalid email {email:?} (from {})", field.attr.value),
                        ),
                    ));
                }
                Some(email) => user.email = Some(email),
            }
        }
        let mut seen = std::collections::HashSet::new();
        for attr in &m.phones {
            for phone in record.values(&attr.value) {
                let phone = phone.trim();
                if let Some(odd) = odd_character(phone, Lines::Single) {
                    return Err(reject(
                        Some(key),
                        Some(&user.username),
                        format!("{} (phone) {odd}", attr.value),
                    ));
                }
                if !phone_digits(phone).is_empty() && seen.insert(phone_digits(phone)) {
                    user.phones.push(phone.to_string());
                }
            }
        }
        user.fields = self.fields(record).map_err(|(reason, on_invalid)| {
            self.field_reject(on_invalid, reject(Some(key), Some(&user.username), reason))
        })?;
        self.apply_roles(record, &mut user)
            .map_err(|reason| reject(Some(key), Some(&user.username), reason))?;
        if let Some(why) = self.target.and_then(|caps| target_refuses(&caps, &user)) {
            return Err(reject(Some(key), Some(&user.username), why));
        }
        Ok(user)
    }

    /// For each target field the roles write, the value of the first rule that matches.
    /// A field no rule matches is left out (the target keeps its value), like a missing
    /// attribute.
    fn apply_roles(&self, record: &SourceRecord, user: &mut DesiredUser) -> Result<(), String> {
        let mut decided: Vec<&str> = Vec::new();
        for rule in &self.mapping.roles {
            let to = rule.to.value.as_str();
            if decided.contains(&to) || !self.role_matches(rule, record, user)? {
                continue;
            }
            decided.push(to);
            user.fields
                .insert(to.to_string(), FieldValue::Set(rule.value.value.clone()));
        }
        Ok(())
    }

    fn role_matches(
        &self,
        rule: &RoleRule,
        record: &SourceRecord,
        user: &DesiredUser,
    ) -> Result<bool, String> {
        Ok(match &rule.condition {
            RoleCondition::Default => true,
            RoleCondition::Attribute { attr, test } => {
                record.values(&attr.value).iter().any(|v| test.test(v))
            }
            RoleCondition::Expression(condition) => {
                let what = format!("role {:?}", rule.value.value);
                let values = inputs(record, condition, &what)?;
                condition
                    .test(&values)
                    .map_err(|e| format!("{what} (when={:?}): {e}", condition.text()))?
            }
            RoleCondition::InGroup(group) => self
                .groups
                .as_ref()
                .is_some_and(|g| g.contains(&group.value, &record.origin, &user.username)),
        })
    }

    /// Aliases: missing → unchanged, blank → clear. Attributes: missing or blank → unchanged.
    /// An odd value (see the module doc) is the reason the record is rejected.
    /// With `on-invalid="default"` an invalid value is left out (and noted); otherwise the
    /// error carries the field's `on-invalid=`.
    #[allow(clippy::type_complexity)]
    fn fields(
        &self,
        record: &SourceRecord,
    ) -> Result<BTreeMap<String, FieldValue>, (String, Option<FieldOnInvalid>)> {
        let mut fields = BTreeMap::new();
        for (alias, mapping) in self
            .mapping
            .aliases
            .iter()
            .map(|m| (true, m))
            .chain(self.mapping.attributes.iter().map(|m| (false, m)))
        {
            let Some(to) = &mapping.to else { continue };
            if matches!(mapping.source, FieldSource::Attribute)
                && record.values(&mapping.attr.value).is_empty()
            {
                continue;
            }
            let rule = if alias { &ALIAS } else { &ATTRIBUTE };
            let v = match value(record, mapping, rule) {
                Ok(v) => v,
                Err(reason) if mapping.on_invalid == Some(FieldOnInvalid::Default) => {
                    self.defaulted(record, rule.what, &reason);
                    continue;
                }
                Err(reason) => return Err((reason, mapping.on_invalid)),
            };
            match v {
                Some(v) => fields.insert(to.value.clone(), FieldValue::Set(v)),
                None if alias => fields.insert(to.value.clone(), FieldValue::Clear),
                None => continue,
            };
        }
        Ok(fields)
    }
}

/// How a single-valued field's values are settled (see the module doc).
struct FieldRule {
    /// The field, as a reason names it.
    what: &'static str,
    /// Leading and trailing whitespace is dropped whatever `normalize` says.
    trim: bool,
    lines: Lines,
    /// Values that differ only in case are one value (emails).
    fold_case: bool,
}

const fn rule(what: &'static str, trim: bool, lines: Lines, fold_case: bool) -> FieldRule {
    FieldRule {
        what,
        trim,
        lines,
        fold_case,
    }
}

const KEY: FieldRule = rule("key", true, Lines::Single, false);
const USERNAME: FieldRule = rule("username", true, Lines::Single, false);
const NAME: FieldRule = rule("name", true, Lines::Single, false);
const EMAIL: FieldRule = rule("email", true, Lines::Single, true);
const ALIAS: FieldRule = rule("alias", false, Lines::Single, false);
const ATTRIBUTE: FieldRule = rule("attribute", false, Lines::Multi, false);

/// Which characters a value may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// One line: no control character at all, no line or paragraph separator, no
    /// text-direction control (which can make a value read as another).
    Single,
    /// Free text: TAB, LF and CR are allowed; every other control character is not.
    Multi,
}

/// What is odd about a value, as the end of a reject reason; `None` when nothing is.
fn odd_character(value: &str, lines: Lines) -> Option<String> {
    let (position, c) = value.chars().enumerate().find(|&(_, c)| match lines {
        Lines::Single => {
            c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        }
        Lines::Multi => c.is_control() && !matches!(c, '\t' | '\n' | '\r'),
    })?;
    let kind = if c.is_control() {
        "a control character"
    } else if matches!(c, '\u{2028}' | '\u{2029}') {
        "a line separator"
    } else {
        "a text-direction control"
    };
    Some(format!(
        "holds {kind} (U+{:04X} at character {}); roster does not send it to the target: fix \
         the value in the source",
        u32::from(c),
        position + 1
    ))
}

/// The one value of a mapped single-valued field, settled by `rule` after `normalize`:
/// `Ok(None)` when the attribute is missing or blank, `Err(reason)` when a value is odd or
/// the attribute has several different values.
fn single(
    record: &SourceRecord,
    attr: &str,
    normalize: &[Normalize],
    rule: &FieldRule,
) -> Result<Option<String>, String> {
    let mut distinct: Vec<String> = Vec::new();
    for raw in record.values(attr) {
        let mut v = normalize.iter().fold(raw.clone(), |v, n| n.apply(&v));
        if rule.trim {
            trim(&mut v);
        }
        if v.trim().is_empty() {
            continue;
        }
        if let Some(odd) = odd_character(&v, rule.lines) {
            return Err(format!("{attr} ({}) {odd}", rule.what));
        }
        let same = |d: &String| {
            if rule.fold_case {
                d.to_lowercase() == v.to_lowercase()
            } else {
                *d == v
            }
        };
        if !distinct.iter().any(same) {
            distinct.push(v);
        }
    }
    if distinct.len() > 1 {
        let shown: Vec<String> = distinct.iter().take(3).map(|v| format!("{v:?}")).collect();
        let more = if distinct.len() > 3 { ", ..." } else { "" };
        return Err(format!(
            "several values: {attr} ({}) has {} different values ({}{more}) and the target \
             field takes one; map a single-valued attribute or remove the extra values",
            rule.what,
            distinct.len(),
            shown.join(", ")
        ));
    }
    Ok(distinct.pop())
}

/// Trims `v` in place: most values have nothing to trim and are not copied.
fn trim(v: &mut String) {
    let trimmed = v.trim();
    if trimmed.len() != v.len() {
        *v = trimmed.to_string();
    }
}

/// The mapped field's one value, normalised; `None` when missing or blank. An attribute is
/// settled by `single`; an expression gets the one value of each attribute it reads (a
/// missing attribute it needs is an error naming it, never an empty string); a static
/// value is the same for everyone. All three then pass the same checks.
fn value(
    record: &SourceRecord,
    field: &FieldMapping,
    rule: &FieldRule,
) -> Result<Option<String>, String> {
    let (raw, written) = match &field.source {
        FieldSource::Attribute => {
            return single(record, &field.attr.value, &field.normalize, rule);
        }
        FieldSource::Static(value) => (value.value.clone(), &field.attr.value),
        FieldSource::Template(template) => {
            let values = inputs(record, template, rule.what)?;
            let raw = template
                .render(&values)
                .map_err(|e| format!("{}: {e} (in {:?})", rule.what, template.text()))?;
            (raw, &field.attr.value)
        }
    };
    let mut v = field.normalize.iter().fold(raw, |v, n| n.apply(&v));
    if rule.trim {
        trim(&mut v);
    }
    if v.trim().is_empty() {
        return Ok(None);
    }
    if let Some(odd) = odd_character(&v, rule.lines) {
        return Err(format!("{written} ({}) {odd}", rule.what));
    }
    Ok(Some(v))
}

/// The attributes an expression reads, each with its one value (missing or blank ones
/// left out, for the expression to default or to fail on).
fn inputs<'t>(
    record: &SourceRecord,
    template: &'t crate::expr::Template,
    what: &str,
) -> Result<Vec<(&'t str, String)>, String> {
    let rule = FieldRule {
        what: "expression",
        trim: false,
        lines: Lines::Multi,
        fold_case: false,
    };
    let mut values = Vec::with_capacity(template.variables().len());
    for name in template.variables() {
        match single(record, name, &[], &rule) {
            Ok(Some(v)) => values.push((name.as_str(), v)),
            Ok(None) => {}
            Err(reason) => return Err(format!("{what}: {reason}")),
        }
    }
    Ok(values)
}

/// A deliberately small check: one `@`, something on both sides, a dot in the domain,
/// no whitespace. Targets do their own validation; this catches directory typos early.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// The `{name}` placeholders of a template.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    out
}

/// Fills a template: `{username}`, `{key}`, `{name}` from the user, anything else from the
/// record's attribute of that name (empty when missing).
fn render(template: &str, record: &SourceRecord, user: &DesiredUser) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..start + len];
        let value = match name {
            "username" => Some(user.username.as_str()),
            "key" => Some(user.key.as_str()),
            "name" => user.name.as_deref(),
            attr => record.first(attr),
        };
        // A missing value is the record's problem, never an empty string in the result
        // (`"{givenName} {sn}"` must not become " Case").
        match value.filter(|v| !v.trim().is_empty()) {
            Some(value) => out.push_str(value),
            None => return Err(format!("attribute `{name}` is missing")),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Why the target would refuse `user`, if it would (LoginTC: username and name of 1 to 128
/// characters, an email address).
fn target_refuses(caps: &Capabilities, user: &DesiredUser) -> Option<String> {
    if let Some(max) = caps.max_text_chars {
        let too_long = [
            ("username", Some(&user.username)),
            ("name", user.name.as_ref()),
        ]
        .into_iter()
        .find_map(|(what, v)| {
            let n = v?.chars().count();
            (n > max).then(|| format!("{what} is {n} characters; the target takes at most {max}"))
        });
        if too_long.is_some() {
            return too_long;
        }
    }
    if caps.needs_email && user.email.is_none() {
        return Some(
            "no email: the target requires one (map `email`, or set default-email in the policy)"
                .to_string(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Normalize, Spanned};

    fn spanned(s: &str) -> Spanned<String> {
        Spanned::new(s.to_string(), (0, 0).into())
    }

    fn field(attr: &str, to: Option<&str>) -> FieldMapping {
        FieldMapping::attribute(spanned(attr), to.map(spanned))
    }

    /// A field of an expression, as the config compiles it.
    fn expression(text: &str, to: Option<&str>) -> FieldMapping {
        FieldMapping {
            source: FieldSource::Template(crate::expr::Template::compile(text).expect("compiles")),
            ..field(text, to)
        }
    }

    fn mapper(policy: Policy) -> Mapper {
        let mut username = field("uid", None);
        username.normalize = vec![Normalize::Trim, Normalize::Lowercase];
        let mapping = UserMapping {
            key: spanned("entryUUID"),
            username,
            name: Some(field("cn", None)),
            email: Some(field("mail", None)),
            phones: vec![spanned("telephoneNumber"), spanned("mobile")],
            aliases: vec![field("displayName", Some("nickName"))],
            attributes: vec![field("title", Some("title"))],
            roles: Vec::new(),
        };
        Mapper::new(&mapping, &policy)
    }

    fn record(attrs: &[(&str, &str)]) -> SourceRecord {
        let mut r = SourceRecord::new("uid=x,ou=People,dc=example,dc=com");
        for (k, v) in attrs {
            r.push(k, *v);
        }
        r
    }

    const BASE: &[(&str, &str)] = &[
        ("entryUUID", "k1"),
        ("uid", " Alice "),
        ("cn", "Alice L"),
        ("mail", "alice@example.com"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> SourceRecord {
        let mut all = BASE.to_vec();
        all.extend_from_slice(extra);
        record(&all)
    }

    #[test]
    fn maps_and_normalises() {
        let u = mapper(Policy::default())
            .map(&with(&[
                ("telephoneNumber", "+1 555"),
                ("mobile", "+1-555"),
                ("mobile", "+2"),
            ]))
            .expect("valid");
        assert_eq!(u.key, "k1");
        assert_eq!(u.username, "alice");
        assert_eq!(u.name.as_deref(), Some("Alice L"));
        assert_eq!(u.phones, ["+1 555", "+2"], "phones deduplicated by digits");
        assert!(u.active);
    }

    #[test]
    fn a_record_out_of_service_is_an_inactive_user() {
        let mut r = with(&[]);
        r.out_of_service = true;
        let u = mapper(Policy::default()).map(&r).expect("valid");
        assert!(!u.active);
        assert_eq!(u.username, "alice", "mapped like any other record");
    }

    #[test]
    fn alias_blank_clears_missing_leaves_and_attribute_blank_is_missing() {
        let m = mapper(Policy::default());
        for (value, want) in [
            (Some(""), Some(FieldValue::Clear)),
            (Some("  "), Some(FieldValue::Clear)),
            (None, None),
            (Some("Al"), Some(FieldValue::Set("Al".into()))),
        ] {
            let r = match value {
                Some(v) => with(&[("displayName", v)]),
                None => with(&[]),
            };
            assert_eq!(
                m.map(&r).expect("valid").fields.get("nickName"),
                want.as_ref(),
                "alias {value:?}"
            );
        }
        for value in ["", " "] {
            assert_eq!(
                m.map(&with(&[("title", value)]))
                    .expect("valid")
                    .fields
                    .get("title"),
                None,
                "attribute {value:?}"
            );
        }
    }

    #[test]
    fn rejects_say_why() {
        let m = mapper(Policy::default());
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("uid", "a"), ("cn", "A"), ("mail", "a@x.org")], "no key"),
            (
                &[
                    ("entryUUID", " "),
                    ("uid", "a"),
                    ("cn", "A"),
                    ("mail", "a@x.org"),
                ],
                "no key",
            ),
            (
                &[("entryUUID", "k"), ("cn", "A"), ("mail", "a@x.org")],
                "no username",
            ),
            (
                &[("entryUUID", "k"), ("uid", "a"), ("mail", "a@x.org")],
                "no name",
            ),
            (&[("entryUUID", "k"), ("uid", "a"), ("cn", "A")], "no email"),
            (
                &[
                    ("entryUUID", "k"),
                    ("uid", "a"),
                    ("cn", "A"),
                    ("mail", "not-an-email"),
                ],
                "invalid email",
            ),
        ];
        for (attrs, want) in cases {
            let err = m.map(&record(attrs)).expect_err(want);
            assert!(err.reason.starts_with(want), "{want}: {}", err.reason);
            assert_eq!(err.origin, "uid=x,ou=People,dc=example,dc=com");
        }
    }

    #[test]
    fn defaults_fill_missing_values() {
        let policy = Policy {
            default_email: Some("{username}@example.com".into()),
            default_name: Some("{username} ({ou})".into()),
            ..Policy::default()
        };
        let m = mapper(policy);
        assert!(m.attributes().contains(&"ou".to_string()));
        let u = m
            .map(&record(&[
                ("entryUUID", "k"),
                ("uid", "Bob"),
                ("ou", "Sales"),
            ]))
            .expect("defaults");
        assert_eq!(u.email.as_deref(), Some("bob@example.com"));
        assert_eq!(u.name.as_deref(), Some("bob (Sales)"));
    }

    fn role(value: &str, to: &str, condition: RoleCondition) -> RoleRule {
        RoleRule {
            value: spanned(value),
            to: spanned(to),
            condition,
        }
    }

    fn when(attr: &str, test: crate::config::AttributeTest) -> RoleCondition {
        RoleCondition::Attribute {
            attr: spanned(attr),
            test,
        }
    }

    /// The roles of the mapping tests: title rules, a group rule, a default, and one rule
    /// for another field.
    fn role_mapper() -> Mapper {
        use crate::config::AttributeTest;
        let mut m = mapper(Policy::default());
        m.mapping.roles = vec![
            role(
                "Lead",
                "userType",
                when("title", AttributeTest::contains("Engineer 4")),
            ),
            role(
                "Admin",
                "userType",
                RoleCondition::InGroup(spanned("Admins")),
            ),
            role(
                "Staff",
                "userType",
                when("title", AttributeTest::equals("engineer")),
            ),
            role(
                "Contractor",
                "userType",
                when(
                    "employeeType",
                    AttributeTest::Matches(regex::Regex::new("^C-[0-9]+$").expect("regex")),
                ),
            ),
            role("Member", "userType", RoleCondition::Default),
            role(
                "yes",
                "urn:x:User:onCall",
                when("title", AttributeTest::contains("oncall")),
            ),
        ];
        let admins = crate::model::SourceGroup {
            origin: "cn=Admins,dc=x".into(),
            key: "g".into(),
            name: "Admins".into(),
            members: vec![crate::model::MemberRef::Origin(
                crate::source::canonical_dn("UID=X, OU=People, dc=example, dc=com"),
            )],
        };
        m.with_groups(Arc::new(GroupIndex::new(&[admins])))
    }

    #[test]
    fn roles_first_match_wins_with_a_default() {
        let m = role_mapper();
        assert!(m.attributes().contains(&"employeetype".to_string()));
        assert_eq!(
            m.target_fields(),
            ["nickName", "title", "userType", "urn:x:User:onCall"]
        );
        let role_of = |extra: &[(&'static str, &'static str)]| {
            let user = m.map(&with(extra)).expect("valid");
            (
                user.fields.get("userType").cloned(),
                user.fields.get("urn:x:User:onCall").cloned(),
            )
        };
        let set = |v: &str| Some(FieldValue::Set(v.into()));
        // The record's DN (uid=x,ou=People,...) is a member of Admins. Each case: the
        // record's extra attributes, then the expected userType and onCall.
        type Case<'a> = (
            &'a [(&'static str, &'static str)],
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (&[("title", "Senior engineer 4")], Some("Lead"), None),
            (&[("title", "Engineer")], Some("Admin"), None),
            (
                &[("title", "Engineer 4 (oncall)")],
                Some("Lead"),
                Some("yes"),
            ),
            (&[("employeeType", "C-17")], Some("Admin"), None),
        ];
        for (attrs, user_type, on_call) in cases {
            assert_eq!(
                role_of(attrs),
                (user_type.and_then(set), on_call.and_then(set)),
                "{attrs:?}"
            );
        }

        let mut outsider = with(&[("title", "ENGINEER")]);
        outsider.origin = "uid=y,ou=People,dc=example,dc=com".into();
        let user = m.map(&outsider).expect("valid");
        assert_eq!(
            user.fields.get("userType"),
            set("Staff").as_ref(),
            "equals ignores case"
        );
        outsider.attrs.remove("title");
        outsider.push("employeeType", "C-17");
        let user = m.map(&outsider).expect("valid");
        assert_eq!(user.fields.get("userType"), set("Contractor").as_ref());
        outsider.attrs.remove("employeetype");
        outsider.push("employeeType", "c-17x");
        let user = m.map(&outsider).expect("valid");
        assert_eq!(
            user.fields.get("userType"),
            set("Member").as_ref(),
            "the default"
        );
        assert_eq!(
            user.fields.get("urn:x:User:onCall"),
            None,
            "no rule: left alone"
        );
    }

    #[test]
    fn in_group_matches_posix_members_by_username_and_nothing_without_groups() {
        let mut m = role_mapper();
        let posix = crate::model::SourceGroup {
            origin: "cn=Admins,dc=x".into(),
            key: "g".into(),
            name: "admins".into(),
            members: vec![crate::model::MemberRef::Username("alice".into())],
        };
        m.groups = Some(Arc::new(GroupIndex::new(&[posix])));
        let mut record = with(&[]);
        record.origin = "uid=elsewhere,dc=x".into();
        let user = m.map(&record).expect("valid");
        assert_eq!(
            user.fields.get("userType"),
            Some(&FieldValue::Set("Admin".into())),
            "memberUid matches the mapped username (uid \" Alice \" normalised)"
        );
        m.groups = None;
        let user = m.map(&record).expect("valid");
        assert_eq!(
            user.fields.get("userType"),
            Some(&FieldValue::Set("Member".into()))
        );
    }

    /// Attribute values of a test record, in order.
    type Attrs<'a> = &'a [(&'a str, &'a str)];

    /// A record of the standard mapping with `attrs` replacing the base values of the same
    /// names (a name listed twice gives two values).
    fn odd(attrs: &[(&str, &str)]) -> SourceRecord {
        let mut r = record(&[]);
        for (name, value) in BASE {
            if !attrs.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                r.push(name, *value);
            }
        }
        for (name, value) in attrs {
            r.push(name, *value);
        }
        r
    }

    #[test]
    fn identity_fields_are_trimmed_whatever_normalize_says() {
        let mut m = mapper(Policy::default());
        m.mapping.username.normalize = Vec::new();
        let cases: &[(Attrs, &str, &str, &str, &str)] = &[
            (
                &[("uid", " alice ")],
                "k1",
                "alice",
                "Alice L",
                "alice@example.com",
            ),
            (
                &[("entryUUID", "\tk1 ")],
                "k1",
                "Alice",
                "Alice L",
                "alice@example.com",
            ),
            (
                &[("cn", "  Alice L\u{a0}")],
                "k1",
                "Alice",
                "Alice L",
                "alice@example.com",
            ),
            (
                &[("mail", " alice@example.com\r\n")],
                "k1",
                "Alice",
                "Alice L",
                "alice@example.com",
            ),
        ];
        for (attrs, key, username, name, email) in cases {
            let mut r = odd(attrs);
            if !attrs.iter().any(|(n, _)| *n == "uid") {
                r.attrs.insert("uid".into(), vec!["Alice".into()]);
            }
            let u = m
                .map(&r)
                .unwrap_or_else(|e| panic!("{attrs:?}: {}", e.reason));
            assert_eq!(
                (
                    u.key.as_str(),
                    u.username.as_str(),
                    u.name.as_deref(),
                    u.email.as_deref()
                ),
                (*key, *username, Some(*name), Some(*email)),
                "{attrs:?}"
            );
        }
    }

    #[test]
    fn control_characters_in_a_value_to_send_reject_the_record_naming_the_attribute() {
        let m = mapper(Policy::default());
        // Each case: the odd attribute, and what the reason must say.
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("mail", "alice\0@example.com")],
                "mail (email) holds a control character (U+0000 at character 6)",
            ),
            (
                &[("uid", "ali\u{1b}[2Kce")],
                "uid (username) holds a control character (U+001B",
            ),
            (
                &[("cn", "Alice\rceo")],
                "cn (name) holds a control character (U+000D",
            ),
            (
                &[("cn", "Alice\nL")],
                "cn (name) holds a control character (U+000A",
            ),
            (
                &[("cn", "Alice\u{85}L")],
                "cn (name) holds a control character (U+0085",
            ),
            (
                &[("cn", "Alice\u{2028}L")],
                "cn (name) holds a line separator (U+2028",
            ),
            (
                &[("uid", "adm\u{202e}nimda")],
                "uid (username) holds a text-direction control (U+202E",
            ),
            (
                &[("entryUUID", "k\u{7f}1")],
                "entryUUID (key) holds a control character (U+007F",
            ),
            (
                &[("telephoneNumber", "+1 555\u{0}")],
                "telephoneNumber (phone) holds a control character (U+0000",
            ),
            (
                &[("displayName", "Al\tice")],
                "displayName (alias) holds a control character (U+0009",
            ),
            (
                &[("title", "Lead\u{1b}]0;x")],
                "title (attribute) holds a control character (U+001B",
            ),
        ];
        for (attrs, want) in cases {
            let err = m.map(&odd(attrs)).expect_err(want);
            assert!(err.reason.starts_with(want), "{attrs:?}: {}", err.reason);
            assert!(
                err.reason.contains("fix the value in the source"),
                "{}",
                err.reason
            );
        }
        // Free text may span lines; other control characters are refused there too.
        let u = m
            .map(&odd(&[("title", "Line 1\r\nLine 2\tend")]))
            .expect("multi-line attribute");
        assert_eq!(
            u.fields.get("title"),
            Some(&FieldValue::Set("Line 1\r\nLine 2\tend".into()))
        );
        // A default template that brings an odd value in is refused the same way.
        let policy = Policy {
            default_email: Some("{ou}@example.com".into()),
            ..Policy::default()
        };
        let mut r = odd(&[("ou", "sa\0les")]);
        r.attrs.remove("mail");
        let err = mapper(policy).map(&r).expect_err("NUL through a template");
        assert!(
            err.reason
                .starts_with("default-email (email) holds a control character"),
            "{}",
            err.reason
        );
    }

    /// A default template whose attribute the record lacks rejects the record, naming the
    /// attribute: never an address or a name with a hole in it.
    #[test]
    fn a_default_template_with_a_missing_attribute_rejects_the_record() {
        let policy = Policy {
            default_email: Some("{ou}@example.com".into()),
            ..Policy::default()
        };
        let mut r = odd(&[]);
        r.attrs.remove("mail");
        r.attrs.remove("ou");
        let err = mapper(policy).map(&r).expect_err("no ou");
        assert_eq!(
            err.reason,
            "default-email (email): attribute `ou` is missing"
        );
    }

    #[test]
    fn a_single_valued_field_with_several_different_values_rejects_the_record() {
        let m = mapper(Policy::default());
        // Each case: extra values, and the start of the reason (`None`: the record maps).
        let cases: &[(Attrs, Option<&str>)] = &[
            (
                &[("uid", "alice"), ("uid", "alice2")],
                Some(
                    "several values: uid (username) has 2 different values (\"alice\", \"alice2\")",
                ),
            ),
            (&[("uid", "Alice"), ("uid", " alice")], None),
            (
                &[("entryUUID", "k1"), ("entryUUID", "k2")],
                Some("several values: entryUUID (key) has 2"),
            ),
            (
                &[("cn", "Alice L"), ("cn", "Alice")],
                Some("several values: cn (name) has 2"),
            ),
            (
                &[
                    ("mail", "a@example.com"),
                    ("mail", "b@example.com"),
                    ("mail", "c@example.com"),
                    ("mail", "d@example.com"),
                ],
                Some(
                    "several values: mail (email) has 4 different values (\"a@example.com\", \"b@example.com\", \"c@example.com\", ...)",
                ),
            ),
            (
                &[("mail", "alice@example.com"), ("mail", "ALICE@example.com")],
                None,
            ),
            (&[("mail", "alice@example.com"), ("mail", "")], None),
            (
                &[("displayName", "Al"), ("displayName", "Ally")],
                Some("several values: displayName (alias) has 2"),
            ),
            (&[("title", "Lead"), ("title", "Lead")], None),
            (
                &[("title", "Lead"), ("title", "Staff")],
                Some("several values: title (attribute) has 2"),
            ),
            (
                &[("telephoneNumber", "+1 555"), ("telephoneNumber", "+1 556")],
                None,
            ),
        ];
        for (attrs, want) in cases {
            match (m.map(&odd(attrs)), want) {
                (Ok(_), None) => {}
                (Err(err), Some(want)) => {
                    assert!(err.reason.starts_with(want), "{attrs:?}: {}", err.reason);
                }
                (Ok(_), Some(want)) => panic!("{attrs:?} mapped; wanted a reject: {want}"),
                (Err(err), None) => panic!("{attrs:?} rejected: {}", err.reason),
            }
        }
    }

    #[test]
    fn a_rejected_record_keeps_what_protects_its_account() {
        let m = mapper(Policy::default());
        let err = m
            .map(&odd(&[("entryUUID", "k1"), ("entryUUID", "k2")]))
            .expect_err("two keys");
        assert_eq!((err.key, err.username.as_deref()), (None, Some("alice")));
        let err = m
            .map(&odd(&[("uid", "alice"), ("uid", "bob")]))
            .expect_err("two usernames");
        assert_eq!((err.key.as_deref(), err.username), (Some("k1"), None));
        let err = m
            .map(&odd(&[("mail", "a\0@example.com")]))
            .expect_err("NUL");
        assert_eq!(
            (err.key.as_deref(), err.username.as_deref()),
            (Some("k1"), Some("alice"))
        );
    }

    #[test]
    fn an_expression_computes_a_field_and_a_missing_attribute_rejects_naming_both() {
        let mut m = mapper(Policy::default());
        m.mapping.name = Some(expression("{givenName} {sn}", None));
        m.mapping.attributes.push(expression(
            "{coalesce(department, ou) | upper | truncate(5)}",
            Some("department"),
        ));
        let attrs = m.attributes();
        for read in ["givenname", "sn", "department", "ou"] {
            assert!(attrs.contains(&read.to_string()), "{read} in {attrs:?}");
        }
        assert!(!attrs.contains(&"{givenname} {sn}".to_string()));
        let u = m
            .map(&odd(&[
                ("givenName", "Ada"),
                ("sn", "Lovelace"),
                ("ou", "research"),
            ]))
            .expect("maps");
        assert_eq!(u.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            u.fields.get("department"),
            Some(&FieldValue::Set("RESEA".into()))
        );
        // Today's bug: " Case" for a record without givenName. Now a reject saying why.
        let err = m
            .map(&odd(&[("sn", "Case")]))
            .expect_err("givenName missing");
        assert!(
            err.reason
                .starts_with("name: attribute `givenName` is missing"),
            "{}",
            err.reason
        );
        // Several different values of an attribute an expression reads: a reject, as for a
        // single-valued field.
        let err = m
            .map(&odd(&[
                ("givenName", "Ada"),
                ("givenName", "Augusta"),
                ("sn", "L"),
            ]))
            .expect_err("two given names");
        assert!(
            err.reason
                .starts_with("name: several values: givenName (expression) has 2"),
            "{}",
            err.reason
        );
        // What an expression makes passes the same checks as an attribute's value.
        let err = m
            .map(&odd(&[("givenName", "Ada\u{1b}[2J"), ("sn", "L")]))
            .expect_err("escape through a template");
        assert!(
            err.reason
                .starts_with("name: givenName (expression) holds a control character"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn a_static_value_is_the_same_for_everyone_and_checked_like_any() {
        let mut m = mapper(Policy::default());
        m.mapping.attributes.push(FieldMapping {
            source: FieldSource::Static(spanned("Acme Corp")),
            ..field("Org", Some("organization"))
        });
        assert!(!m.attributes().contains(&"org".to_string()));
        let u = m.map(&odd(&[])).expect("maps");
        assert_eq!(
            u.fields.get("organization"),
            Some(&FieldValue::Set("Acme Corp".into()))
        );
        m.mapping.attributes.last_mut().expect("pushed").source =
            FieldSource::Static(spanned("Acme\u{0}"));
        let err = m.map(&odd(&[])).expect_err("NUL in a static value");
        assert!(
            err.reason
                .starts_with("Org (attribute) holds a control character"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn on_invalid_default_replaces_an_invalid_email_and_says_so() {
        let policy = Policy {
            default_email: Some("{username}@example.com".into()),
            ..Policy::default()
        };
        let mut m = mapper(policy.clone());
        m.mapping.email.as_mut().expect("email").on_invalid = Some(FieldOnInvalid::Default);
        let u = m
            .map(&odd(&[("mail", "not-an-address")]))
            .expect("defaulted");
        assert_eq!(u.email.as_deref(), Some("alice@example.com"));
        let u = m
            .map(&odd(&[
                ("mail", "a@example.com"),
                ("mail", "b@example.com"),
            ]))
            .expect("several values are invalid too");
        assert_eq!(u.email.as_deref(), Some("alice@example.com"));
        let u = m.map(&odd(&[])).expect("a valid one is kept");
        assert_eq!(u.email.as_deref(), Some("alice@example.com"));
        let notes = m.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "email: 2 invalid values were replaced by default-email (on-invalid=\"default\"): \
                 uid=x,ou=People,dc=example,dc=com: invalid email \"not-an-address\" (from mail); "
            ),
            "{}",
            notes[0]
        );
        // Without on-invalid=default the same record is a reject, and nothing is noted.
        let plain = mapper(policy);
        let err = plain
            .map(&odd(&[("mail", "not-an-address")]))
            .expect_err("invalid");
        assert!(err.reason.starts_with("invalid email"), "{}", err.reason);
        assert!(plain.notes().is_empty());
    }

    #[test]
    fn on_invalid_fail_and_skip_on_a_field_override_the_policy() {
        let mut m = mapper(Policy::default());
        m.mapping.email.as_mut().expect("email").on_invalid = Some(FieldOnInvalid::Fail);
        m.map(&odd(&[("mail", "bad")])).expect_err("invalid");
        m.map(&odd(&[("cn", "A"), ("cn", "B")]))
            .expect_err("a name reject: not fatal");
        let outcomes = m.outcomes();
        assert_eq!(outcomes.fatal.len(), 1, "{outcomes:?}");
        assert!(outcomes.fatal[0].contains("invalid email \"bad\""));

        let policy = Policy {
            on_invalid: OnInvalid::Fail,
            ..Policy::default()
        };
        let mut m = mapper(policy);
        m.mapping.name.as_mut().expect("name").on_invalid = Some(FieldOnInvalid::Skip);
        m.map(&odd(&[("cn", "A"), ("cn", "B")]))
            .expect_err("two names");
        let outcomes = m.outcomes();
        assert!(outcomes.fatal.is_empty());
        assert!(
            outcomes
                .skipped
                .contains("uid=x,ou=People,dc=example,dc=com")
        );
    }

    #[test]
    fn on_invalid_default_leaves_an_attribute_out() {
        let mut m = mapper(Policy::default());
        m.mapping.attributes[0].on_invalid = Some(FieldOnInvalid::Default);
        let u = m
            .map(&odd(&[("title", "Lead"), ("title", "Staff")]))
            .expect("left out");
        assert_eq!(u.fields.get("title"), None);
        assert!(m.notes()[0].starts_with("attribute: 1 invalid value was replaced by nothing"));
    }

    #[test]
    fn normalisers_apply_in_order() {
        let cases: &[(&[Normalize], &str, &str)] = &[
            (&[Normalize::Uppercase], "ab", "AB"),
            (&[Normalize::Title], "mary-ann o'NEIL", "Mary-Ann O'Neil"),
            (&[Normalize::CollapseSpaces], " a \t b  c ", "a b c"),
            (
                &[Normalize::Ascii, Normalize::Lowercase],
                "Zoë Łukasz-Ørsted",
                "zoe lukasz-orsted",
            ),
            (
                &[
                    Normalize::Trim,
                    Normalize::CollapseSpaces,
                    Normalize::Lowercase,
                ],
                "  Jean  Luc ",
                "jean luc",
            ),
        ];
        for (list, input, want) in cases {
            let got = list.iter().fold(input.to_string(), |v, n| n.apply(&v));
            assert_eq!(got, *want, "{list:?}");
        }
        let mut m = mapper(Policy::default());
        m.mapping.username.normalize = vec![Normalize::Ascii, Normalize::Lowercase];
        let u = m.map(&odd(&[("uid", "Jürgen")])).expect("maps");
        assert_eq!(u.username, "jurgen");
    }

    #[test]
    fn a_role_condition_may_be_an_expression() {
        let mut m = mapper(Policy::default());
        let condition = crate::expr::Template::compile_condition(
            "{title is defined and ('Engineer' in title or employeeType == 'C')}",
        )
        .expect("compiles");
        m.mapping.roles = vec![
            role("Tech", "userType", RoleCondition::Expression(condition)),
            role("Member", "userType", RoleCondition::Default),
        ];
        assert!(m.attributes().contains(&"employeetype".to_string()));
        let role_of = |attrs: Attrs| {
            m.map(&odd(attrs))
                .expect("maps")
                .fields
                .get("userType")
                .cloned()
        };
        let set = |v: &str| Some(FieldValue::Set(v.into()));
        assert_eq!(role_of(&[("title", "Senior Engineer")]), set("Tech"));
        assert_eq!(
            role_of(&[("title", "Clerk"), ("employeeType", "C")]),
            set("Tech")
        );
        assert_eq!(
            role_of(&[("title", "Clerk"), ("employeeType", "E")]),
            set("Member")
        );
        assert_eq!(
            role_of(&[("cn", "No Title")]),
            set("Member"),
            "`is defined` guards"
        );
        // An attribute the expression needs and the record lacks rejects it, naming both.
        let err = m
            .map(&odd(&[("title", "Clerk")]))
            .expect_err("employeeType missing");
        assert!(
            err.reason.starts_with("role \"Tech\" (when=")
                && err.reason.contains("attribute `employeeType` is missing"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn email_check() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@b@c.de", "a@.b", "a@b.",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
