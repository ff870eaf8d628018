//! `roster::config::parse`: typed values from a valid config, and the reports people read
//! when a config is wrong (snapshots in `snapshots/`, rendered without colour at width 100).

use std::path::{Path, PathBuf};

use miette::{GraphicalReportHandler, GraphicalTheme};
use roster::config::{
    Cap, Config, ConfigError, ConfigProblem, GroupScope, Mode, Normalize, OnInvalid, ProblemKind,
    SourceConfig, TargetConfig, parse,
};
use roster::secret::SecretRef;
use sha2::{Digest, Sha256};

/// A complete, valid config with an inline policy; the failing cases below each break it in
/// one or more places.
const VALID: &str = r#"state "var/state.db"

source "ldap" {
    url "ldap://dc1.example.com:389"
    starttls #true
    ca-file "certs/corp-ca.pem"
    // TLS is always verified (tls-insecure-skip-verify is refused)
    bind-dn "cn=sync,ou=Service,dc=example,dc=com"
    bind-password env="LDAP_BIND_PASSWORD"
    base-dn "ou=People,dc=example,dc=com" "ou=Contractors,dc=example,dc=com"
    filter "(objectClass=inetOrgPerson)"
    page-size 200
    timeout 10
}

target "scim" {
    url "https://example.com/scim/v2"
    token file="/run/secrets/scim"
    concurrency 8
    rate-limit 2.5
}

user {
    key "entryUUID"
    username "uid" normalize="lowercase"
    name "cn" normalize="trim"
    email "mail" normalize="trim,lowercase"
    phone "telephoneNumber" "mobile"
    alias "mail" to="nickName"
    attribute "title" to="title" normalize="trim"
    attribute "departmentNumber" to="department"
}

policy {
    mode "remove"
    max-removes 10
    max-remove-percent 5
    max-adds 100
    max-updates "10%"
    max-source-shrink-percent 15
    on-invalid "fail"
    default-email "{username}@example.com"
    default-name "{givenName} {sn}"
}
"#;

/// The smallest valid config: everything else takes its default.
const MINIMAL: &str = r#"source "ldap" {
    url "ldaps://dc1.example.com:636"
    base-dn "ou=People,dc=example,dc=com"
}
target "scim" {
    url "https://example.com/scim/v2"
    token env="SCIM_TOKEN"
}
user {
    key "entryUUID"
    username "uid"
}
"#;

fn parse_ok(path: &Path, text: &str) -> Config {
    match parse(path, text) {
        Ok(config) => config,
        Err(error) => panic!("expected a valid config, got:\n{}", render(&error)),
    }
}

fn parse_err(path: &Path, text: &str) -> ConfigError {
    match parse(path, text) {
        Ok(_) => panic!("expected problems, the config parsed:\n{text}"),
        Err(error) => error,
    }
}

fn render(error: &ConfigError) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, error)
        .expect("rendering to a String cannot fail");
    out
}

/// The codes of the problems in a report, in order.
fn codes(error: &ConfigError) -> Vec<&'static str> {
    error.problems().iter().map(|p| p.code()).collect()
}

/// Parses `text` as `roster.kdl`, expects problems, and snapshots the rendered report.
fn check(name: &str, text: &str) -> ConfigError {
    let error = parse_err(Path::new("roster.kdl"), text);
    let rendered = render(&error);
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, rendered);
    });
    error
}

/// `VALID` with one piece of text replaced (which must be there).
fn valid_with(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "{from:?} is not in VALID");
    VALID.replacen(from, to, 1)
}

#[test]
fn full_config_parses_into_typed_values() {
    let dir = PathBuf::from("/etc/roster");
    let config = parse_ok(&dir.join("roster.kdl"), VALID);

    assert_eq!(config.path, dir.join("roster.kdl"));
    assert_eq!(config.state, dir.join("var/state.db"));
    assert_eq!(config.source_text.name(), "/etc/roster/roster.kdl");
    assert_eq!(config.source_text.inner(), VALID);

    let SourceConfig::Ldap(ldap) = &config.source else {
        panic!("expected an LDAP source, got {:?}", config.source);
    };
    assert_eq!(ldap.url.as_str(), "ldap://dc1.example.com:389");
    let url_at = VALID.find("\"ldap://dc1").unwrap();
    assert_eq!(ldap.url.span.offset(), url_at, "the span is the value's");
    assert!(ldap.starttls);
    assert_eq!(
        ldap.ca_file.as_ref().map(|f| f.value.clone()),
        Some(dir.join("certs/corp-ca.pem"))
    );
    assert_eq!(
        ldap.bind_dn.as_deref().map(String::as_str),
        Some("cn=sync,ou=Service,dc=example,dc=com")
    );
    assert_eq!(
        ldap.bind_password.as_deref(),
        Some(&SecretRef::Env("LDAP_BIND_PASSWORD".into()))
    );
    let base_dns: Vec<&str> = ldap.base_dns.iter().map(|d| d.as_str()).collect();
    assert_eq!(
        base_dns,
        [
            "ou=People,dc=example,dc=com",
            "ou=Contractors,dc=example,dc=com"
        ]
    );
    assert_eq!(ldap.filter.as_str(), "(objectClass=inetOrgPerson)");
    assert_eq!((ldap.page_size, ldap.timeout_secs), (200, 10));

    let TargetConfig::Scim(scim) = &config.target else {
        panic!("a scim target")
    };
    assert_eq!(scim.url.as_str(), "https://example.com/scim/v2");
    assert_eq!(*scim.token, SecretRef::File("/run/secrets/scim".into()));
    assert_eq!(scim.concurrency, 8);
    assert_eq!(scim.rate_limit, Some(2.5));
    assert_eq!(
        (scim.page_size, scim.http.timeout_secs),
        (None, 30),
        "defaults: the page the provider accepts"
    );
    assert!(scim.http.ca_file.is_none());

    let user = &config.user;
    assert_eq!(user.key.as_str(), "entryUUID");
    assert_eq!(user.username.attr.as_str(), "uid");
    assert_eq!(user.username.normalize, [Normalize::Lowercase]);
    assert_eq!(
        user.email.as_ref().map(|e| e.normalize.clone()),
        Some(vec![Normalize::Trim, Normalize::Lowercase])
    );
    let phones: Vec<&str> = user.phones.iter().map(|p| p.as_str()).collect();
    assert_eq!(phones, ["telephoneNumber", "mobile"]);
    assert_eq!(user.aliases.len(), 1);
    assert_eq!(user.aliases[0].attr.as_str(), "mail");
    assert_eq!(
        user.aliases[0].to.as_deref().map(String::as_str),
        Some("nickName")
    );
    let attributes: Vec<(&str, &str)> = user
        .attributes
        .iter()
        .map(|a| (a.attr.as_str(), a.to.as_ref().unwrap().as_str()))
        .collect();
    assert_eq!(
        attributes,
        [("title", "title"), ("departmentNumber", "department")]
    );

    let policy = &config.policy;
    assert_eq!(policy.mode, Mode::Remove);
    assert_eq!(policy.max_removes, Cap::Count(10));
    assert_eq!(policy.max_remove_percent.map(|v| v.value), Some(5.0));
    assert_eq!(policy.max_adds.map(|v| v.value), Some(Cap::Count(100)));
    assert_eq!(
        policy.max_updates.map(|v| v.value),
        Some(Cap::Percent(10.0))
    );
    assert_eq!(policy.max_source_shrink_percent, 15.0);
    assert_eq!(policy.on_invalid, OnInvalid::Fail);
    assert_eq!(
        policy.default_email.as_deref(),
        Some("{username}@example.com")
    );
    assert_eq!(policy.default_name.as_deref(), Some("{givenName} {sn}"));
    let origin = policy.origin.expect("an inline policy has an origin");
    assert_eq!(origin.offset(), VALID.find("policy {").unwrap());

    assert_eq!(config.digest.len(), 64, "a sha256 in hex");
    assert_ne!(config.digest, hex_sha256(&[VALID]), "not the bytes");
}

/// Plans record the config digest and apply refuses a plan made with another config: a
/// comment, blank lines, indentation or another spelling of the same value must not count,
/// any value must.
#[test]
fn the_digest_is_of_the_values_not_of_comments_or_layout() {
    let path = Path::new("roster.kdl");
    let digest = |text: &str| parse_ok(path, text).digest;
    let base = digest(VALID);
    let same = [
        VALID.replace("page-size 200", "page-size 200 // smaller pages"),
        VALID.replace("    timeout 10\n", "        timeout   10\n\n\n"),
        format!("// Reviewed 2024-05-01\n/* block */\n{VALID}\n"),
        VALID.replace("page-size 200", "page-size 0xc8"),
        VALID.replace(
            "    timeout 10\n",
            "    timeout 10\n    /-filter \"(uid=*)\"\n",
        ),
    ];
    for text in &same {
        assert_eq!(digest(text), base, "{text}");
    }
    let other = [
        VALID.replace("page-size 200", "page-size 201"),
        VALID.replace("timeout 10", "timeout 11"),
        VALID.replace(
            "    timeout 10\n",
            "    timeout 10\n    follow-referrals #true\n",
        ),
    ];
    for text in &other {
        assert_ne!(digest(text), base, "{text}");
    }
}

#[test]
fn defaults_fill_a_minimal_config() {
    let config = parse_ok(Path::new("deploy/roster.kdl"), MINIMAL);
    assert_eq!(config.state, PathBuf::from("deploy/.roster/state.db"));
    let SourceConfig::Ldap(ldap) = &config.source else {
        panic!("expected an LDAP source, got {:?}", config.source);
    };
    assert!(!ldap.starttls);
    assert!(ldap.bind_dn.is_none() && ldap.bind_password.is_none());
    assert_eq!(ldap.filter.as_str(), "(objectClass=*)");
    assert_eq!((ldap.page_size, ldap.timeout_secs), (500, 30));
    let TargetConfig::Scim(scim) = &config.target else {
        panic!("a scim target")
    };
    assert_eq!((scim.concurrency, scim.rate_limit), (4, None));
    assert!(config.user.name.is_none() && config.user.phones.is_empty());
    assert_eq!(config.policy, roster::config::Policy::default());
}

#[test]
fn thresholds_per_kind_grace_periods_and_drip_parse_with_their_spans() {
    let text = valid_with("max-adds 100", "max-adds \"2%\"")
    .replacen(
        "max-updates \"10%\"",
        "max-updates \"10%\"\n    max-deletes 0\n    max-changes \"10%\"\n    remove-after \"3 runs\"\n    over-cap \"drip\"",
        1,
    )
    .replacen("max-removes 10", "max-removes \"1.5%\"", 1);
    let config = parse_ok(Path::new("roster.kdl"), &text);
    let policy = &config.policy;
    assert_eq!(policy.max_removes, Cap::Percent(1.5));
    assert_eq!(policy.max_adds.map(|v| v.value), Some(Cap::Percent(2.0)));
    assert_eq!(policy.max_deletes.map(|v| v.value), Some(Cap::Count(0)));
    assert_eq!(
        policy.max_changes.map(|v| v.value),
        Some(Cap::Percent(10.0))
    );
    assert_eq!(
        policy.remove_after.map(|v| v.value),
        Some(roster::config::Grace::Runs(3))
    );
    assert_eq!(policy.over_cap, roster::config::OverCap::Drip);
    let at = config
        .policy_value_at(
            policy.max_deletes.as_ref().unwrap(),
            "set here",
            "max-deletes",
        )
        .expect("a file has it");
    let rendered = format!("{:?}", miette::Report::new(at));
    assert!(rendered.contains("max-deletes 0"), "{rendered}");
    for (text, grace) in [
        ("72h", roster::config::Grace::Hours(72)),
        ("3d", roster::config::Grace::Days(3)),
        ("1 run", roster::config::Grace::Runs(1)),
    ] {
        assert_eq!(roster::config::Grace::parse(text), Some(grace));
        assert_eq!(grace.to_string(), text);
    }
    // Absent: deletes count with the removes, nothing waits, over the cap everything holds.
    let defaults = roster::config::Policy::default();
    assert!(defaults.max_deletes.is_none() && defaults.remove_after.is_none());
    assert_eq!(defaults.over_cap, roster::config::OverCap::Hold);
}

#[test]
fn policy_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    let policy_text = "mode \"delete\"\nmax-adds \"2.5%\"\nmax-updates 7\n";
    std::fs::write(dir.path().join("policies/nightly.kdl"), policy_text).unwrap();
    let text = format!("{MINIMAL}policy \"policies/nightly.kdl\"\n");

    let config = parse_ok(&dir.path().join("roster.kdl"), &text);

    assert_eq!(config.policy.mode, Mode::Delete);
    assert_eq!(
        config.policy.max_adds.map(|v| v.value),
        Some(Cap::Percent(2.5))
    );
    assert_eq!(
        config.policy.max_updates.map(|v| v.value),
        Some(Cap::Count(7))
    );
    assert_eq!(config.policy.max_removes, Cap::Count(0), "default");
    let origin = config.policy.origin.expect("a policy file has an origin");
    assert_eq!(origin.offset(), text.find("policy \"").unwrap());
    assert_eq!(origin.len(), "policy \"policies/nightly.kdl\"".len());
    assert_ne!(
        config.digest,
        hex_sha256(&[&text, policy_text]),
        "not the bytes"
    );
    // A comment in the policy file changes nothing; a value does.
    let with_comment = format!("// nightly\n{policy_text}// end\n");
    std::fs::write(dir.path().join("policies/nightly.kdl"), with_comment).unwrap();
    let digest = parse_ok(&dir.path().join("roster.kdl"), &text).digest;
    assert_eq!(digest, config.digest);
    let changed = policy_text.replace("max-updates 7", "max-updates 8");
    std::fs::write(dir.path().join("policies/nightly.kdl"), changed).unwrap();
    let digest = parse_ok(&dir.path().join("roster.kdl"), &text).digest;
    assert_ne!(digest, config.digest);
}

#[test]
fn policy_presets_parse() {
    // The presets are the files under policies/ in this repository; `roster.kdl` (no
    // directory) resolves them against the working directory, which is the package root.
    for (preset, mode, on_invalid) in [
        ("default", Mode::AddOnly, OnInvalid::Skip),
        ("scheduled", Mode::Remove, OnInvalid::Skip),
        ("strict", Mode::AddOnly, OnInvalid::Fail),
    ] {
        let text = format!("{MINIMAL}policy \"policies/{preset}.kdl\"\n");
        let policy = parse_ok(Path::new("roster.kdl"), &text).policy;
        assert_eq!(
            (*policy.mode, policy.on_invalid),
            (mode, on_invalid),
            "{preset}"
        );
        if preset == "scheduled" {
            assert_eq!(policy.max_removes, Cap::Count(10));
            assert_eq!(policy.max_remove_percent.map(|v| v.value), Some(2.0));
            assert_eq!(policy.max_source_shrink_percent, 5.0);
        } else {
            assert_eq!(policy.max_removes, Cap::Count(0), "{preset}");
            assert_eq!(policy.max_source_shrink_percent, 20.0, "{preset}");
        }
    }
}

fn hex_sha256(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn misspelled_node() {
    let error = check(
        "misspelled_node",
        &valid_with("    base-dn \"ou=People", "    base-nd \"ou=People"),
    );
    // Not also reported missing: the suggestion says it all.
    assert_eq!(codes(&error), ["roster::config::unknown_node"]);
    assert_eq!(
        error.problems()[0].help_text(),
        Some("did you mean `base-dn`?")
    );
}

#[test]
fn missing_required_node() {
    let error = check("missing_key", &valid_with("    key \"entryUUID\"\n", ""));
    assert_eq!(codes(&error), ["roster::config::missing_node"]);
    let problem = &error.problems()[0];
    assert_eq!(problem.message(), "`user` has no `key`");
    assert_eq!(problem.span().offset(), VALID.find("user {").unwrap());
}

#[test]
fn wrong_type() {
    let error = check(
        "wrong_type",
        &valid_with("page-size 200", "page-size \"big\""),
    );
    assert_eq!(codes(&error), ["roster::config::wrong_type"]);
}

#[test]
fn out_of_range() {
    let error = check(
        "out_of_range",
        &valid_with("page-size 200", "page-size 5000"),
    );
    assert_eq!(codes(&error), ["roster::config::invalid_value"]);
}

#[test]
fn inline_secret_is_refused_and_masked() {
    let error = check(
        "inline_secret",
        &valid_with("token file=\"/run/secrets/scim\"", "token \"s3cr3t-Tok3n\""),
    );
    assert_eq!(codes(&error), ["roster::config::inline_secret"]);
    assert!(
        !render(&error).contains("s3cr3t-Tok3n"),
        "the report must not quote the secret"
    );
}

#[test]
fn bad_mode() {
    let error = check(
        "bad_mode",
        &valid_with("mode \"remove\"", "mode \"remove-all\""),
    );
    assert_eq!(codes(&error), ["roster::config::invalid_value"]);
}

#[test]
fn several_problems_in_one_report() {
    let text = VALID
        .replacen("ldap://dc1", "ldaps://dc1", 1)
        .replacen(
            "    filter \"(objectClass=inetOrgPerson)\"",
            "    filter \"(&(objectClass=inetOrgPerson)\"",
            1,
        )
        .replacen("concurrency 8", "concurrency 0", 1)
        .replacen(
            "username \"uid\" normalize=",
            "username \"uid\" normalise=",
            1,
        )
        .replacen(
            "attribute \"departmentNumber\" to=\"department\"",
            "attribute \"departmentNumber\"",
            1,
        )
        .replacen("max-updates \"10%\"", "max-updates \"ten percent\"", 1)
        .replacen(
            "default-name \"{givenName} {sn}\"",
            "default-name \"{givenName {sn}\"",
            1,
        );
    let error = check("several_problems", &text);
    assert_eq!(
        codes(&error),
        [
            "roster::config::invalid_value",    // starttls with ldaps://
            "roster::config::invalid_value",    // filter not closed
            "roster::config::invalid_value",    // concurrency 0
            "roster::config::unknown_property", // normalise=
            "roster::config::missing_value",    // attribute without to=
            "roster::config::invalid_value",    // max-updates
            "roster::config::invalid_value",    // default-name template
        ]
    );
}

#[test]
fn syntax_error() {
    let error = check(
        "syntax_error",
        &valid_with(
            "    timeout 10\n}",
            "    timeout 10\n    filter \"(uid=*)\n}",
        ),
    );
    assert!(codes(&error).iter().all(|c| *c == "roster::config::syntax"));
}

#[test]
fn unknown_source_type() {
    let error = check(
        "unknown_source_type",
        &valid_with("source \"ldap\"", "source \"ldpa\""),
    );
    assert_eq!(codes(&error), ["roster::config::invalid_value"]);
}

/// `VALID` with group sync: a `group` block, role rules and the group policy settings.
fn with_groups() -> String {
    valid_with(
        "    attribute \"departmentNumber\" to=\"department\"\n",
        r#"    attribute "departmentNumber" to="department"
    role "Lead" when="title" contains="Engineer 4"
    role "Admin" in-group="Admins" to="urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"
    role "Contractor" when="employeeType" matches="^C-[0-9]+$"
    role "Staff" when="title" equals="engineer"
    role "Member" default=#true
"#,
    )
    .replacen(
        "    default-name \"{givenName} {sn}\"\n",
        "    default-name \"{givenName} {sn}\"\n    max-member-removes \"10%\"\n    group-all \"Everyone\"\n",
        1,
    ) + r#"
group {
    base-dn "ou=Groups,dc=example,dc=com" "ou=Teams,dc=example,dc=com"
    filter "(objectClass=groupOfNames)"
    name "cn"
    key "entryUUID"
    nested #true
}
"#
}

#[test]
fn group_block_roles_and_group_policy_parse() {
    use roster::config::{AttributeTest, RoleCondition};
    let text = with_groups();
    let config = parse_ok(Path::new("roster.kdl"), &text);

    let group = config.group.as_ref().expect("a group block");
    let GroupScope::Directory { base_dns, filter } = &group.scope else {
        panic!("an LDAP group block: {:?}", group.scope);
    };
    let base_dns: Vec<&str> = base_dns.iter().map(|d| d.as_str()).collect();
    assert_eq!(
        base_dns,
        ["ou=Groups,dc=example,dc=com", "ou=Teams,dc=example,dc=com"]
    );
    assert_eq!(filter.as_str(), "(objectClass=groupOfNames)");
    assert_eq!(
        (group.name.as_str(), group.key.as_str()),
        ("cn", "entryUUID")
    );
    assert!(group.nested);

    let roles: Vec<(&str, &str)> = config
        .user
        .roles
        .iter()
        .map(|r| (r.value.as_str(), r.to.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            ("Lead", "userType"),
            (
                "Admin",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"
            ),
            ("Contractor", "userType"),
            ("Staff", "userType"),
            ("Member", "userType"),
        ]
    );
    let conditions = &config.user.roles;
    assert!(matches!(
        &conditions[0].condition,
        RoleCondition::Attribute { attr, test: AttributeTest::Contains(part) }
            if attr.as_str() == "title" && part == "engineer 4"
    ));
    assert!(
        matches!(&conditions[1].condition, RoleCondition::InGroup(g) if g.as_str() == "Admins")
    );
    assert!(matches!(
        &conditions[2].condition,
        RoleCondition::Attribute { test: AttributeTest::Matches(re), .. } if re.is_match("C-17")
    ));
    assert!(matches!(conditions[4].condition, RoleCondition::Default));

    assert_eq!(
        config.policy.max_member_removes.map(|v| v.value),
        Some(Cap::Percent(10.0))
    );
    assert_eq!(config.policy.group_all.as_deref(), Some("Everyone"));
}

#[test]
fn group_block_defaults() {
    let config = parse_ok(
        Path::new("roster.kdl"),
        &format!("{MINIMAL}group {{\n    base-dn \"ou=Groups,dc=example,dc=com\"\n}}\n"),
    );
    let group = config.group.expect("a group block");
    let GroupScope::Directory { filter, .. } = &group.scope else {
        panic!("an LDAP group block: {:?}", group.scope);
    };
    assert_eq!(
        filter.as_str(),
        "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    );
    assert_eq!(
        (group.name.as_str(), group.key.as_str()),
        ("cn", "entryUUID")
    );
    assert!(!group.nested);
    assert!(parse_ok(Path::new("roster.kdl"), MINIMAL).group.is_none());
}

#[test]
fn group_and_role_problems_in_one_report() {
    let text = with_groups()
        .replacen(
            "contains=\"Engineer 4\"",
            "contains=\"Engineer 4\" in-group=\"Leads\"",
            1,
        )
        .replacen("matches=\"^C-[0-9]+$\"", "matches=\"^C-[0-9+$\"", 1)
        .replacen(
            "role \"Member\" default=#true",
            "role \"Member\" default=#true\n    role \"Guest\" when=\"title\"",
            1,
        )
        .replacen(
            "    nested #true\n",
            "    nested #true\n    nesting #true\n",
            1,
        )
        .replacen(
            "max-member-removes \"10%\"",
            "max-member-removes \"ten\"",
            1,
        );
    let error = check("group_and_role_problems", &text);
    assert_eq!(
        codes(&error),
        [
            "roster::config::invalid_value", // two kinds of condition
            "roster::config::invalid_value", // bad regex
            "roster::config::missing_value", // when= without a test
            "roster::config::invalid_value", // max-member-removes
            "roster::config::unknown_node",  // nesting
        ]
    );
}

/// One line per case: a change to the group-sync config, and the codes it must cause.
#[test]
fn each_group_mistake_is_reported_with_its_code() {
    use ProblemKind::*;
    let text = with_groups();
    let cases: &[(&str, &str, &[ProblemKind])] = &[
        (
            "role \"Member\" default=#true",
            "role \"Member\"",
            &[MissingValue],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" default=#false",
            &[InvalidValue],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" default=\"yes\"",
            &[WrongType],
        ),
        (
            "role \"Member\" default=#true",
            "role default=#true",
            &[MissingValue],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" default=#true to=\"\"",
            &[InvalidValue],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" contains=\"x\"",
            &[MissingValue],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" when=\"title\" equals=\"a\" contains=\"b\"",
            &[InvalidValue],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" default=#true when=\"title\" equals=\"a\"",
            &[InvalidValue],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" defualt=#true",
            &[UnknownProperty],
        ),
        (
            "role \"Member\" default=#true",
            "role \"Member\" default=#true\n    role \"Late\" when=\"title\" equals=\"x\"",
            &[InvalidValue],
        ),
        (
            "role \"Lead\" when=\"title\" contains=\"Engineer 4\"",
            "role \"Lead\" when=\"title\" contains=\"Engineer 4\" to=\"department\"",
            &[InvalidValue],
        ),
        (
            "    name \"cn\"\n    key",
            "    name \"\"\n    key",
            &[InvalidValue],
        ),
        ("    nested #true", "    nested \"yes\"", &[WrongType]),
        (
            "base-dn \"ou=Groups,dc=example,dc=com\" \"ou=Teams,dc=example,dc=com\"",
            "base-dn",
            &[MissingValue],
        ),
        (
            "    filter \"(objectClass=groupOfNames)\"",
            "    filter \"objectClass=groupOfNames\"",
            &[InvalidValue],
        ),
        ("group-all \"Everyone\"", "group-all \"\"", &[InvalidValue]),
        ("group-all \"Everyone\"", "group-all 1", &[WrongType]),
        (
            "max-member-removes \"10%\"",
            "max-member-removes -1",
            &[InvalidValue],
        ),
        ("group {", "group \"ldap\" {", &[InvalidValue]),
    ];
    for (from, to, expected) in cases {
        assert!(text.contains(from), "{from:?} is not in the group config");
        let changed = text.replacen(from, to, 1);
        let error = parse_err(Path::new("roster.kdl"), &changed);
        let kinds: Vec<ProblemKind> = error.problems().iter().map(|p| p.kind()).collect();
        assert_eq!(&kinds, expected, "{from:?} -> {to:?}:\n{}", render(&error));
    }

    // in-group= names a source group: without a `group` block there are none.
    let without_block = text[..text.find("\ngroup {").expect("group block")].to_string();
    let error = parse_err(Path::new("roster.kdl"), &without_block);
    assert_eq!(codes(&error), ["roster::config::missing_node"]);
    assert_eq!(
        error.problems()[0].message(),
        "`in-group=` needs a `group` block"
    );
    // A second group block is a duplicate.
    let error = parse_err(
        Path::new("roster.kdl"),
        &format!("{text}group {{\n    base-dn \"ou=More,dc=example,dc=com\"\n}}\n"),
    );
    assert_eq!(codes(&error), ["roster::config::duplicate_node"]);
}

#[test]
fn problem_inside_a_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/nightly.kdl"),
        "// Nightly removes, capped.\nmode \"remove\"\nmax-removes -3\nmax-remove-percnt 2\n",
    )
    .unwrap();
    let text = format!("{MINIMAL}policy \"policies/nightly.kdl\"\n");
    let error = parse_err(&dir.path().join("roster.kdl"), &text);
    assert_eq!(
        codes(&error),
        [
            "roster::config::invalid_value",
            "roster::config::unknown_node"
        ]
    );
    assert!(error.problems()[0].file_name().ends_with("nightly.kdl"));

    let rendered = render(&error);
    let tmp = escape_regex(&dir.path().display().to_string());
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        filters => vec![(tmp.as_str(), "[TMP]")],
    }, {
        insta::assert_snapshot!("policy_file_problem", rendered);
    });
}

fn escape_regex(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = "\\.+*?()|[]{}^$".contains(c);
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[test]
fn missing_policy_file() {
    let text = format!("{MINIMAL}policy \"policies/no-such-policy.kdl\"\n");
    let error = check("missing_policy_file", &text);
    assert_eq!(codes(&error), ["roster::config::unreadable"]);
}

#[test]
fn duplicate_and_conflicting_nodes() {
    let text = valid_with("    timeout 10\n", "    timeout 10\n    page-size 100\n")
        .replacen("    bind-password env=\"LDAP_BIND_PASSWORD\"\n", "", 1)
        .replacen("policy {", "policy \"policies/default.kdl\"\npolicy {", 1);
    let error = check("duplicates_and_conflicts", &text);
    assert_eq!(
        codes(&error),
        [
            "roster::config::missing_node",   // bind-dn without bind-password
            "roster::config::duplicate_node", // page-size twice
            "roster::config::duplicate_node", // policy twice
        ]
    );
}

#[test]
fn misplaced_and_missing_blocks() {
    let text = MINIMAL
        .replacen(
            "user {\n    key \"entryUUID\"\n    username \"uid\"\n}\n",
            "",
            1,
        )
        .replacen(
            "    token env=\"SCIM_TOKEN\"\n",
            "    token env=\"SCIM_TOKEN\"\n    mode \"remove\"\n",
            1,
        );
    let error = check("misplaced_and_missing", &text);
    assert_eq!(
        codes(&error),
        [
            "roster::config::missing_node",
            "roster::config::unknown_node"
        ]
    );
    assert_eq!(
        error.problems()[1].help_text(),
        Some("`mode` belongs in the `policy` block")
    );
}

#[test]
fn later_stages_can_point_into_the_config() {
    // What the planner does when the target refuses a value the config set.
    let config = parse_ok(Path::new("roster.kdl"), VALID);
    let TargetConfig::Scim(scim) = &config.target else {
        panic!("a scim target")
    };
    let problem = ConfigProblem::at(
        ProblemKind::InvalidValue,
        &config.source_text,
        scim.url.span,
        "the SCIM service at `url` does not support filtering by externalId",
    )
    .with_label("this service")
    .with_help("check that `url` is the SCIM API root, ending in /v2");
    assert_eq!(problem.code(), "roster::config::invalid_value");
    let error = ConfigError::Invalid {
        problems: vec![problem],
    };
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!("problem_at_config_value", render(&error));
    });
}

/// One line per case: a change to `VALID`, and the codes of the problems it must cause.
#[test]
fn each_mistake_is_reported_with_its_code() {
    use ProblemKind::*;
    let cases: &[(&str, &str, &[ProblemKind])] = &[
        ("url \"ldap://dc1", "url \"http://dc1", &[InvalidValue]),
        (
            "url \"ldap://dc1.example.com:389\"",
            "url \"ldap://\"",
            &[InvalidValue],
        ),
        (
            "url \"https://example.com",
            "url \"ftp://example.com",
            &[InvalidValue],
        ),
        ("starttls #true", "starttls \"yes\"", &[WrongType]),
        ("starttls #true", "starttls", &[MissingValue]),
        ("timeout 10", "timeout 0", &[InvalidValue]),
        ("timeout 10", "timeout 1.5", &[WrongType]),
        ("timeout 10", "timeout 10 20", &[InvalidValue]),
        ("timeout 10", "timeout 10 {\n    x 1\n}", &[WrongType]),
        ("rate-limit 2.5", "rate-limit 0", &[InvalidValue]),
        ("rate-limit 2.5", "rate-limit \"fast\"", &[WrongType]),
        (
            "filter \"(objectClass=inetOrgPerson)\"",
            "filter \"objectClass=*\"",
            &[InvalidValue],
        ),
        (
            "bind-password env=\"LDAP_BIND_PASSWORD\"",
            "bind-password \"hunter2\"",
            &[InlineSecret],
        ),
        (
            "bind-password env=\"LDAP_BIND_PASSWORD\"",
            "bind-password password=\"hunter2\"",
            &[UnknownProperty],
        ),
        (
            "bind-password env=\"LDAP_BIND_PASSWORD\"",
            "bind-password",
            &[MissingValue],
        ),
        (
            "bind-password env=\"LDAP_BIND_PASSWORD\"",
            "bind-password env=\"A\" file=\"/b\"",
            &[InvalidValue],
        ),
        (
            "bind-password env=\"LDAP_BIND_PASSWORD\"",
            "bind-password env=\"\"",
            &[InvalidValue],
        ),
        (
            "    bind-dn \"cn=sync,ou=Service,dc=example,dc=com\"\n",
            "",
            &[MissingNode],
        ),
        (
            "base-dn \"ou=People,dc=example,dc=com\" \"ou=Contractors,dc=example,dc=com\"",
            "base-dn",
            &[MissingValue],
        ),
        (
            "key \"entryUUID\"",
            "key \"entryUUID\" to=\"id\"",
            &[UnknownProperty],
        ),
        ("key \"entryUUID\"", "key \"\"", &[InvalidValue]),
        (
            "normalize=\"trim,lowercase\"",
            "normalize=\"trim,upper\"",
            &[InvalidValue],
        ),
        (
            "normalize=\"trim,lowercase\"",
            "normalize=#true",
            &[WrongType],
        ),
        (
            "alias \"mail\" to=\"nickName\"",
            "alias \"mail\" to=\"title\"",
            &[InvalidValue],
        ),
        (
            "alias \"mail\" to=\"nickName\"",
            "alias \"mail\" to=\"nickName\" to=\"x\"",
            &[DuplicateNode],
        ),
        (
            "phone \"telephoneNumber\" \"mobile\"",
            "phone \"a\"\n    phone \"b\"",
            &[DuplicateNode],
        ),
        (
            "state \"var/state.db\"",
            "state \"var/state.db\"\nstate \"other.db\"",
            &[DuplicateNode],
        ),
        (
            "state \"var/state.db\"",
            "stat \"var/state.db\"",
            &[UnknownNode],
        ),
        ("source \"ldap\" {", "source {", &[MissingValue]),
        ("target \"scim\"", "target \"okta\"", &[InvalidValue]),
        ("user {", "user \"people\" {", &[InvalidValue]),
        ("max-removes 10", "max-removes 1.5", &[WrongType]),
        (
            "max-remove-percent 5",
            "max-remove-percent 150",
            &[InvalidValue],
        ),
        ("max-adds 100", "max-adds -1", &[InvalidValue]),
        ("max-adds 100", "max-adds 2.5", &[WrongType]),
        ("max-adds 100", "max-adds \"ten\"", &[InvalidValue]),
        ("max-removes 10", "max-removes -1", &[InvalidValue]),
        ("max-removes 10", "max-removes \"150%\"", &[InvalidValue]),
        ("max-removes 10", "max-removes \"ten\"", &[InvalidValue]),
        ("max-adds 100", "max-deletes \"5 %%\"", &[InvalidValue]),
        ("max-adds 100", "max-changes #true", &[WrongType]),
        ("max-adds 100", "remove-after \"3 weeks\"", &[InvalidValue]),
        ("max-adds 100", "remove-after \"0h\"", &[InvalidValue]),
        ("max-adds 100", "remove-after 72", &[WrongType]),
        ("max-adds 100", "over-cap \"trickle\"", &[InvalidValue]),
        (
            "on-invalid \"fail\"",
            "on-invalid \"abort\"",
            &[InvalidValue],
        ),
        (
            "default-email \"{username}@example.com\"",
            "default-email \"{}@example.com\"",
            &[InvalidValue],
        ),
        (
            "default-email \"{username}@example.com\"",
            "default-email \"x}@example.com\"",
            &[InvalidValue],
        ),
        (
            "policy {",
            "policy \"policies/default.kdl\" {",
            &[InvalidValue],
        ),
    ];
    for (from, to, expected) in cases {
        let text = valid_with(from, to);
        let error = parse_err(Path::new("roster.kdl"), &text);
        let kinds: Vec<ProblemKind> = error.problems().iter().map(|p| p.kind()).collect();
        assert_eq!(&kinds, expected, "{from:?} -> {to:?}:\n{}", render(&error));
    }
}

/// `MINIMAL` with `nodes` added to its SCIM target block.
fn minimal_with_scim(nodes: &str) -> String {
    let from = "    token env=\"SCIM_TOKEN\"\n";
    assert!(MINIMAL.contains(from));
    MINIMAL.replacen(from, &format!("{from}{nodes}"), 1)
}

#[test]
fn the_scim_target_takes_a_ca_file_and_a_proxy() {
    let dir = PathBuf::from("/etc/roster");
    let config = parse_ok(
        &dir.join("roster.kdl"),
        &minimal_with_scim(
            "    ca-file \"certs/corp-ca.pem\"\n    proxy \"http://proxy.example.com:3128\"\n    proxy-user \"sync\"\n    proxy-password env=\"PROXY_PASSWORD\"\n    timeout 12\n",
        ),
    );
    let TargetConfig::Scim(scim) = &config.target else {
        panic!("a scim target")
    };
    let http = &scim.http;
    assert_eq!(http.timeout_secs, 12);
    let ca_file = http.ca_file.as_ref().expect("ca-file");
    assert_eq!(
        ca_file.value,
        dir.join("certs/corp-ca.pem"),
        "beside the config"
    );
    let proxy = http.proxy.as_ref().expect("proxy");
    assert_eq!(proxy.as_str(), "http://proxy.example.com:3128");
    let text = config.source_text.inner();
    assert_eq!(proxy.span.offset(), text.find("\"http://proxy").unwrap());
    assert_eq!(http.proxy_user.as_ref().map(|u| u.as_str()), Some("sync"));
    assert_eq!(
        http.proxy_password.as_ref().map(|p| &p.value),
        Some(&SecretRef::Env("PROXY_PASSWORD".into()))
    );
    assert!(
        config
            .secrets()
            .contains(&("proxy-password", &SecretRef::Env("PROXY_PASSWORD".into()))),
        "the proxy password is checked by validate like every secret"
    );

    let socks = parse_ok(
        Path::new("roster.kdl"),
        &minimal_with_scim("    proxy \"socks5://127.0.0.1:1080\"\n"),
    );
    let TargetConfig::Scim(scim) = &socks.target else {
        panic!("a scim target")
    };
    assert!(scim.http.proxy.is_some() && scim.http.proxy_user.is_none());
}

#[test]
fn proxy_mistakes_are_reported_at_the_node() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "    proxy \"http://p:3128\"\n    proxy-user \"sync\"\n",
            &["roster::config::missing_node"],
            "`proxy-user` is given without `proxy-password`",
        ),
        (
            "    proxy \"http://p:3128\"\n    proxy-password env=\"PROXY_PASSWORD\"\n",
            &["roster::config::missing_node"],
            "`proxy-password` is given without `proxy-user`",
        ),
        (
            "    proxy-user \"sync\"\n    proxy-password env=\"PROXY_PASSWORD\"\n",
            &[
                "roster::config::missing_node",
                "roster::config::missing_node",
            ],
            "`proxy-user` is given without `proxy`",
        ),
        (
            "    proxy \"ftp://p:21\"\n",
            &["roster::config::invalid_value"],
            "`proxy` must start with http:// or https:// or socks5:// or socks5h://",
        ),
        (
            "    proxy \"http://p:70000\"\n",
            &["roster::config::invalid_value"],
            "`proxy` has a port that is not a number from 1 to 65535",
        ),
        (
            "    proxy \"http://p:3128/x\"\n",
            &["roster::config::invalid_value"],
            "`proxy` has a path, a query or a fragment",
        ),
        (
            "    proxy \"http://sync@p:3128\"\n",
            &["roster::config::invalid_value"],
            "`proxy` names its user in the URL",
        ),
        (
            "    proxy \"http://p:3128\"\n    proxy-user \"sync\"\n    proxy-password \"hunter2\"\n",
            &["roster::config::inline_secret"],
            "`proxy-password` holds a secret written inline",
        ),
        (
            "    ca-file \"\"\n",
            &["roster::config::invalid_value"],
            "`ca-file` is an empty path",
        ),
    ];
    for (nodes, expected, message) in cases {
        let text = minimal_with_scim(nodes);
        let error = parse_err(Path::new("roster.kdl"), &text);
        assert_eq!(&codes(&error), expected, "{nodes}");
        let problem = &error.problems()[0];
        assert_eq!(problem.message(), *message, "{nodes}");
        let name = message.split('`').nth(1).expect("a node in the message");
        let node_at = text.find(&format!("    {name} ")).expect("the node") + 4;
        assert!(
            (node_at..text[node_at..].find('\n').unwrap() + node_at)
                .contains(&problem.span().offset()),
            "{nodes}: the span is on the `{name}` line"
        );
    }
}

#[test]
fn a_password_in_the_proxy_url_is_refused_and_masked() {
    let text = minimal_with_scim("    proxy \"http://sync:hunter2@proxy:3128\"\n");
    let error = parse_err(Path::new("roster.kdl"), &text);
    assert_eq!(codes(&error), ["roster::config::inline_secret"]);
    let rendered = render(&error);
    assert!(!rendered.contains("hunter2"), "{rendered}");
    assert!(rendered.contains("proxy-password env="), "{rendered}");
}

#[test]
fn inline_secrets_are_masked_everywhere_in_the_report() {
    let text = valid_with(
        "bind-password env=\"LDAP_BIND_PASSWORD\"",
        "bind-password \"hunter2\" pass=\"swordfish\"",
    )
    .replacen("page-size 200", "page-size 0", 1);
    let rendered = render(&parse_err(Path::new("roster.kdl"), &text));
    assert!(!rendered.contains("hunter2"), "{rendered}");
    assert!(!rendered.contains("swordfish"), "{rendered}");
    assert!(rendered.contains("\"*******\""), "{rendered}");
}

#[test]
fn an_empty_config_names_every_missing_block() {
    let error = parse_err(Path::new("roster.kdl"), "");
    let messages: Vec<&str> = error.problems().iter().map(|p| p.message()).collect();
    assert_eq!(
        messages,
        [
            "the config has no `source` block",
            "the config has no `target` block",
            "the config has no `user` block"
        ]
    );
}

#[test]
fn kdl_v1_keywords_get_a_hint() {
    let error = parse_err(
        Path::new("roster.kdl"),
        &valid_with("starttls #true", "starttls true"),
    );
    assert_eq!(codes(&error), ["roster::config::syntax"]);
    assert_eq!(
        error.problems()[0].help_text(),
        Some("KDL 2 writes booleans and null with a #: #true")
    );
}

#[test]
fn an_unclosed_block_is_reported_once() {
    let error = parse_err(
        Path::new("roster.kdl"),
        VALID.trim_end().strip_suffix('}').unwrap(),
    );
    let messages: Vec<&str> = error.problems().iter().map(|p| p.message()).collect();
    assert_eq!(messages, ["no closing '}' for child block"]);
}

#[test]
fn deeply_nested_blocks_are_refused_before_they_reach_the_kdl_parser() {
    // kdl parses blocks recursively: thousands of them overflowed the stack and aborted.
    let depth = 5_000;
    let text = format!(
        "{MINIMAL}user {{\n{}{}}}\n",
        "nested { ".repeat(depth),
        "}".repeat(depth)
    );
    let error = parse_err(Path::new("roster.kdl"), &text);
    assert_eq!(codes(&error), ["roster::config::too_deep"]);
    let problem = &error.problems()[0];
    assert_eq!(problem.message(), "blocks are nested more than 64 deep");
    // The user block is the first level; the 64th `nested` opens level 65.
    let brace = MINIMAL.len() + "user {\n".len() + 63 * "nested { ".len() + "nested ".len();
    assert_eq!(problem.span().offset(), brace);
    assert_eq!(&text[brace..brace + 1], "{");
    let rendered = render(&error);
    assert!(rendered.contains("block 65 deep"), "{rendered}");
    assert!(rendered.contains("roster.kdl:14:575"), "{rendered}");

    // The same in a policy file, which names its own file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deep.kdl"),
        format!("{}{}", "mode { ".repeat(depth), "}".repeat(depth)),
    )
    .unwrap();
    let text = format!("{MINIMAL}policy \"deep.kdl\"\n");
    let error = parse_err(&dir.path().join("roster.kdl"), &text);
    assert_eq!(codes(&error), ["roster::config::too_deep"]);
    assert!(error.problems()[0].file_name().ends_with("deep.kdl"));
}

/// `MINIMAL` with its source block replaced by `source`.
fn minimal_with_source(source: &str) -> String {
    let ldap = "source \"ldap\" {\n    url \"ldaps://dc1.example.com:636\"\n    base-dn \"ou=People,dc=example,dc=com\"\n}\n";
    assert!(MINIMAL.starts_with(ldap));
    format!("{source}\n{}", &MINIMAL[ldap.len()..])
}

#[test]
fn file_sources_parse_with_paths_beside_the_config() {
    use roster::config::{CsvSource, LdifSource};
    let dir = Path::new("/etc/roster");
    let csv = |block: &str| -> CsvSource {
        let config = parse_ok(&dir.join("roster.kdl"), &minimal_with_source(block));
        match config.source {
            SourceConfig::Csv(csv) => csv,
            other => panic!("expected a CSV source, got {other:?}"),
        }
    };
    let plain = csv("source \"csv\" {\n    path \"exports/people.csv\"\n}");
    assert_eq!(plain.path.value, dir.join("exports/people.csv"));
    assert_eq!(plain.delimiter, b',');
    let cases = [
        ("\";\"", b';'),
        ("\"\\t\"", b'\t'),
        ("\"tab\"", b'\t'),
        ("#\"\\t\"#", b'\t'),
        ("\"|\"", b'|'),
    ];
    for (written, byte) in cases {
        let block =
            format!("source \"csv\" {{\n    path \"/data/p.csv\"\n    delimiter {written}\n}}");
        let parsed = csv(&block);
        assert_eq!(parsed.delimiter, byte, "delimiter {written}");
        assert_eq!(parsed.path.value, PathBuf::from("/data/p.csv"));
    }

    let config = parse_ok(
        &dir.join("roster.kdl"),
        &minimal_with_source("source \"ldif\" {\n    path \"export.ldif\"\n}"),
    );
    let SourceConfig::Ldif(LdifSource { path }) = &config.source else {
        panic!("expected an LDIF source, got {:?}", config.source);
    };
    assert_eq!(path.value, dir.join("export.ldif"));
}

#[test]
fn bad_csv_delimiter() {
    let error = check(
        "bad_csv_delimiter",
        &minimal_with_source("source \"csv\" {\n    path \"people.csv\"\n    delimiter \";;\"\n}"),
    );
    assert_eq!(codes(&error), ["roster::config::invalid_value"]);
    for bad in ["\"\"", "\"\\\"\"", "\"\\n\"", "\"é\"", "1"] {
        let text = minimal_with_source(&format!(
            "source \"csv\" {{\n    path \"people.csv\"\n    delimiter {bad}\n}}"
        ));
        let error = parse_err(Path::new("roster.kdl"), &text);
        assert_eq!(error.problems().len(), 1, "delimiter {bad}");
    }
}

#[test]
fn csv_source_without_path() {
    let error = check(
        "csv_source_without_path",
        &minimal_with_source("source \"csv\" {\n    delimiter \";\"\n    base-dn \"ou=People\"\n}"),
    );
    assert_eq!(
        codes(&error),
        [
            "roster::config::missing_node",
            "roster::config::unknown_node"
        ]
    );
}

#[test]
fn ldif_source_with_a_misspelled_path() {
    let error = parse_err(
        Path::new("roster.kdl"),
        &minimal_with_source("source \"ldif\" {\n    paht \"export.ldif\"\n}"),
    );
    assert_eq!(codes(&error), ["roster::config::unknown_node"]);
    assert_eq!(
        error.problems()[0].help_text(),
        Some("did you mean `path`?")
    );
}

/// TLS to the directory is always verified: the switch that turned it off is refused with
/// what to do instead, never accepted quietly.
#[test]
fn tls_insecure_skip_verify_is_refused_with_a_way_out() {
    let text = VALID.replace(
        "    // TLS is always verified (tls-insecure-skip-verify is refused)\n",
        "    tls-insecure-skip-verify #true\n",
    );
    let error = parse_err(Path::new("roster.kdl"), &text);
    assert_eq!(codes(&error), ["roster::config::unsupported"]);
    let rendered = render(&error);
    assert!(rendered.contains("always verifies"), "{rendered}");
    assert!(rendered.contains("ca-file"), "{rendered}");
}

#[test]
fn read_settings_parse_and_bad_ones_say_what_they_may_be() {
    use roster::config::{Every, ReadMode};
    let config = parse_ok(
        Path::new("roster.kdl"),
        &valid_with(
            "policy {",
            "policy {\n    read \"incremental\"\n    complete-every \"10 runs\"\n    max-incremental-age \"2d\"",
        ),
    );
    assert_eq!(*config.policy.read.read, ReadMode::Incremental);
    assert_eq!(*config.policy.read.complete_every, Every::Runs(10));
    assert_eq!(*config.policy.read.max_incremental_age, 2 * 86_400);
    let defaults = parse_ok(Path::new("roster.kdl"), VALID);
    assert_eq!(*defaults.policy.read.read, ReadMode::Complete);
    assert_eq!(*defaults.policy.read.complete_every, Every::Seconds(86_400));

    let error = parse_err(
        Path::new("roster.kdl"),
        &valid_with(
            "policy {",
            "policy {\n    read \"sometimes\"\n    complete-every \"often\"\n    max-incremental-age \"7 weeks\"",
        ),
    );
    assert_eq!(error.problems().len(), 3, "{}", render(&error));
    let rendered = render(&error);
    for expected in [
        "unknown read \"sometimes\"",
        "`complete-every` \"often\" is neither a span of time nor a number of runs",
        "`max-incremental-age` \"7 weeks\" is not a span of time",
    ] {
        assert!(rendered.contains(expected), "{expected:?} in {rendered}");
    }
}

#[test]
fn a_scim_provider_preset_and_compatibility_switches_parse() {
    use roster::config::{ScimCompatibility, ScimProvider};
    let dir = PathBuf::from("/etc/roster");
    let text = valid_with(
        "    rate-limit 2.5\n",
        "    rate-limit 2.5\n    provider \"aws\"\n    compatibility {\n        patch #false\n        members-in-listings #true\n        max-page-size 50\n        bulk #false\n    }\n",
    );
    let config = parse_ok(&dir.join("roster.kdl"), &text);
    let TargetConfig::Scim(scim) = &config.target else {
        panic!("a scim target")
    };
    assert_eq!(scim.provider, ScimProvider::Aws);
    assert_eq!(
        scim.compatibility,
        ScimCompatibility {
            patch: Some(false),
            members_in_listings: Some(true),
            max_page_size: Some(50),
            bulk: Some(false),
            ..ScimCompatibility::default()
        }
    );
    let config = parse_ok(&dir.join("roster.kdl"), VALID);
    let TargetConfig::Scim(scim) = &config.target else {
        panic!("a scim target")
    };
    assert_eq!(scim.provider, ScimProvider::Generic, "the default");
    assert_eq!(scim.compatibility, ScimCompatibility::default());

    let error = parse_err(
        &dir.join("roster.kdl"),
        &valid_with(
            "    rate-limit 2.5\n",
            "    rate-limit 2.5\n    provider \"azure\"\n    compatibility {\n        members #false\n        max-page-size 0\n    }\n",
        ),
    );
    let messages: Vec<&str> = error.problems().iter().map(|p| p.message()).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[0].contains("unknown provider \"azure\""),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("unknown node `members` in `compatibility`"),
        "{messages:?}"
    );
    assert!(messages[2].contains("max-page-size"), "{messages:?}");
}

#[test]
fn expressions_static_values_and_on_invalid_parse() {
    let config = parse_ok(
        Path::new("roster.kdl"),
        &valid_with(
            "    name \"cn\" normalize=\"trim\"\n",
            "    name \"{givenName} {sn}\" normalize=\"collapse-spaces,title\"\n    \
             attribute \"Acme Corp\" to=\"organization\" value=\"Acme Corp\"\n    \
             role \"Chief\" when=\"{title is defined and title == 'CEO'}\"\n",
        )
        .replace(
            "email \"mail\" normalize=\"trim,lowercase\"",
            "email \"mail\" on-invalid=\"default\"",
        ),
    );
    let user = &config.user;
    let name = user.name.as_ref().expect("name");
    assert!(
        matches!(&name.source, roster::config::FieldSource::Template(t) if t.variables() == ["givenName", "sn"])
    );
    assert_eq!(
        name.normalize,
        [Normalize::CollapseSpaces, Normalize::Title]
    );
    let org = user
        .attributes
        .iter()
        .find(|a| a.to.as_ref().is_some_and(|t| t.as_str() == "organization"))
        .expect("org");
    assert!(
        matches!(&org.source, roster::config::FieldSource::Static(v) if v.as_str() == "Acme Corp")
    );
    assert_eq!(
        user.email.as_ref().expect("email").on_invalid,
        Some(roster::config::FieldOnInvalid::Default)
    );
    assert!(matches!(
        user.roles[0].condition,
        roster::config::RoleCondition::Expression(_)
    ));
}

#[test]
fn a_bad_expression_is_a_config_error_pointing_into_the_value() {
    // Each case: what the name is, the part the span must cover, and the message's end.
    let cases: &[(&str, &str, &str)] = &[
        (
            "{givenName} {sn | shout}",
            "shout",
            "unknown filter `shout` (the filters are lower, upper",
        ),
        ("{givenName} {nope(sn)}", "nope", "unknown function `nope`"),
        (
            "{givenName",
            "{",
            "`{` is not closed (write `{{` for a literal brace)",
        ),
        ("{sn | truncate}", "{sn | truncate}", "missing argument"),
        (
            "{sn | truncate(1, 2)}",
            "{sn | truncate(1, 2)}",
            "too many arguments",
        ),
        ("{givenName} {sn +}", "{sn +}", "syntax error"),
    ];
    for (expression, part, why) in cases {
        let line = format!("    name \"{expression}\" normalize=\"trim\"\n");
        let text = valid_with("    name \"cn\" normalize=\"trim\"\n", &line);
        let error = parse_err(Path::new("roster.kdl"), &text);
        assert_eq!(
            codes(&error),
            ["roster::config::invalid_value"],
            "{expression}"
        );
        let problem = &error.problems()[0];
        assert!(
            problem
                .message()
                .starts_with("`name` is not a valid expression: ")
                && problem.message().contains(why),
            "{expression}: {}",
            problem.message()
        );
        let at = text.find(&line).expect("line") + line.find(expression).expect("value");
        let span = problem.span();
        assert_eq!(
            &text[span.offset()..span.offset() + span.len()],
            *part,
            "{expression}"
        );
        assert!(span.offset() >= at, "{expression}");
    }
    // A bad role condition and a bad on-invalid, too.
    let text = valid_with(
        "    name \"cn\" normalize=\"trim\"\n",
        "    name \"cn\"\n    role \"X\" when=\"{title is odd}\"\n    username2\n",
    );
    let text = text.replace("    username2\n", "");
    let error = parse_err(Path::new("roster.kdl"), &text);
    assert!(
        error.problems()[0].message().contains("unknown test `odd`"),
        "{}",
        error.problems()[0].message()
    );
    let text = valid_with(
        "username \"uid\" normalize=\"lowercase\"",
        "username \"uid\" on-invalid=\"default\"",
    );
    let error = parse_err(Path::new("roster.kdl"), &text);
    assert!(
        error.problems()[0]
            .message()
            .contains("unknown on-invalid \"default\" for `username`"),
        "{}",
        error.problems()[0].message()
    );
}

/// A mapping may not send an attribute to a name the plan uses for one of roster's own fields:
/// read back, `to="active"` would be the account's state and `to="owner"` its owner.
#[test]
fn a_mapped_field_may_not_take_the_name_of_rosters_own_fields() {
    let error = parse_err(
        Path::new("roster.kdl"),
        &valid_with(
            "    attribute \"departmentNumber\" to=\"department\"",
            "    attribute \"departmentNumber\" to=\"owner\"\n    alias \"mail\" to=\"active\"\n    role \"Staff\" default=#true to=\"email\"",
        ),
    );
    let rendered = render(&error);
    assert_eq!(error.problems().len(), 3, "{rendered}");
    for name in ["owner", "active", "email"] {
        assert!(
            rendered.contains(&format!(
                "`to=\"{name}\"` is the name of one of roster's own fields"
            )),
            "{name} in {rendered}"
        );
    }
}
