//! `roster::config::parse` for the REST sources (`source "servicenow"`, `source "freshservice"`)
//! and the Active Directory settings of `source "ldap"`: typed values, defaults, and the
//! reports people read when a block is wrong (snapshots in `snapshots/`, as in tests/config.rs).

use std::path::Path;

use miette::{GraphicalReportHandler, GraphicalTheme};
use roster::config::{
    ActiveDirectory, Config, ConfigError, DisabledAccounts, FreshserviceList, GroupScope,
    ProblemKind, SourceConfig, parse,
};
use roster::secret::SecretRef;

const REST_OF_CONFIG: &str = r#"
target "scim" {
    url "https://example.com/scim/v2"
    token env="SCIM_TOKEN"
}
user {
    key "sys_id"
    username "user_name"
}
"#;

fn with_source(source: &str) -> String {
    format!("{source}{REST_OF_CONFIG}")
}

fn parse_ok(text: &str) -> Config {
    match parse(Path::new("roster.kdl"), text) {
        Ok(config) => config,
        Err(error) => panic!("expected a valid config, got:\n{}", render(&error)),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match parse(Path::new("roster.kdl"), text) {
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

fn kinds(error: &ConfigError) -> Vec<ProblemKind> {
    error.problems().iter().map(|p| p.kind()).collect()
}

fn check(name: &str, text: &str) -> ConfigError {
    let error = parse_err(text);
    let rendered = render(&error);
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, rendered);
    });
    error
}

const SERVICENOW: &str = r#"source "servicenow" {
    url "https://acme.service-now.com"
    username "roster.sync"
    password env="SN_PASSWORD"
    client-id "3f2a9c0d"
    client-secret file="/run/secrets/sn-client"
    query "active=true^department=IT"
    page-size 200
    timeout 10
}
"#;

const FRESHSERVICE: &str = r#"source "freshservice" {
    url "https://acme.freshservice.com"
    api-key env="FS_API_KEY"
    include "requesters" "agents"
    page-size 50
}
"#;

#[test]
fn a_servicenow_block_parses_into_typed_values() {
    let config = parse_ok(&with_source(SERVICENOW));
    let SourceConfig::ServiceNow(sn) = &config.source else {
        panic!("expected ServiceNow, got {:?}", config.source)
    };
    assert_eq!(sn.url.as_str(), "https://acme.service-now.com");
    assert_eq!(sn.username.as_str(), "roster.sync");
    assert_eq!(sn.password.value, SecretRef::Env("SN_PASSWORD".into()));
    let oauth = sn.oauth.as_ref().expect("OAuth");
    assert_eq!(oauth.client_id.as_str(), "3f2a9c0d");
    assert_eq!(
        oauth.client_secret.value,
        SecretRef::File("/run/secrets/sn-client".into())
    );
    assert_eq!(sn.query.as_str(), "active=true^department=IT");
    assert_eq!((sn.page_size, sn.http.timeout_secs), (200, 10));

    let minimal = parse_ok(&with_source(
        "source \"servicenow\" {\n    url \"https://acme.service-now.com\"\n    username \"sync\"\n    password env=\"SN_PASSWORD\"\n}\n",
    ));
    let SourceConfig::ServiceNow(sn) = &minimal.source else {
        panic!("expected ServiceNow")
    };
    assert!(sn.oauth.is_none(), "basic auth without client-id");
    assert_eq!(
        sn.query.as_str(),
        "active=true",
        "inactive users are left out by default"
    );
    assert_eq!((sn.page_size, sn.http.timeout_secs), (1000, 30));
}

#[test]
fn a_freshservice_block_parses_into_typed_values() {
    let config = parse_ok(&with_source(FRESHSERVICE));
    let SourceConfig::Freshservice(fs) = &config.source else {
        panic!("expected Freshservice, got {:?}", config.source)
    };
    assert_eq!(fs.url.as_str(), "https://acme.freshservice.com");
    assert_eq!(fs.api_key.value, SecretRef::Env("FS_API_KEY".into()));
    assert_eq!(
        fs.include,
        [FreshserviceList::Requesters, FreshserviceList::Agents]
    );
    assert_eq!((fs.page_size, fs.http.timeout_secs), (50, 30));

    let minimal = parse_ok(&with_source(
        "source \"freshservice\" {\n    url \"https://acme.freshservice.com\"\n    api-key env=\"FS_API_KEY\"\n}\n",
    ));
    let SourceConfig::Freshservice(fs) = &minimal.source else {
        panic!("expected Freshservice")
    };
    assert_eq!(fs.include, [FreshserviceList::Requesters]);
    assert_eq!(fs.page_size, 100);
}

#[test]
fn rest_sources_take_a_ca_file_and_a_proxy() {
    const HTTP: &str = "    ca-file \"/etc/ssl/corp-ca.pem\"\n    proxy \"https://proxy.example.com:3128\"\n    proxy-user \"sync\"\n    proxy-password file=\"secrets/proxy\"\n";
    for block in [SERVICENOW, FRESHSERVICE] {
        let config = parse_ok(&with_source(&block.replacen(
            "}\n",
            &format!("{HTTP}}}\n"),
            1,
        )));
        let http = match &config.source {
            SourceConfig::ServiceNow(sn) => &sn.http,
            SourceConfig::Freshservice(fs) => &fs.http,
            other => panic!("expected a REST source, got {other:?}"),
        };
        assert_eq!(
            http.ca_file.as_ref().map(|f| f.value.clone()),
            Some("/etc/ssl/corp-ca.pem".into())
        );
        assert_eq!(
            http.proxy.as_ref().map(|p| p.as_str()),
            Some("https://proxy.example.com:3128")
        );
        assert_eq!(http.proxy_user.as_ref().map(|u| u.as_str()), Some("sync"));
        assert_eq!(
            http.proxy_password.as_ref().map(|p| &p.value),
            Some(&SecretRef::File("secrets/proxy".into())),
            "relative to the config's directory"
        );
    }

    for block in [SERVICENOW, FRESHSERVICE] {
        let text = with_source(&block.replacen("}\n", "    proxy-user \"sync\"\n}\n", 1));
        let error = parse_err(&text);
        let messages: Vec<&str> = error.problems().iter().map(|p| p.message()).collect();
        assert_eq!(
            messages,
            [
                "`proxy-user` is given without `proxy-password`",
                "`proxy-user` is given without `proxy`"
            ]
        );
        let at = text.find("proxy-user").unwrap();
        assert!(error.problems().iter().all(|p| p.span().offset() == at));
        assert_eq!(kinds(&error), [ProblemKind::MissingNode; 2]);
    }
}

#[test]
fn servicenow_inline_password_is_refused_and_masked() {
    let text = with_source(
        &SERVICENOW.replace("password env=\"SN_PASSWORD\"", "password \"Winter2024!\""),
    );
    let error = check("servicenow_inline_password", &text);
    assert_eq!(kinds(&error), [ProblemKind::InlineSecret]);
    assert!(!render(&error).contains("Winter2024!"));
}

#[test]
fn freshservice_without_api_key_is_reported() {
    let text = with_source(&FRESHSERVICE.replace("    api-key env=\"FS_API_KEY\"\n", ""));
    let error = check("freshservice_missing_api_key", &text);
    assert_eq!(kinds(&error), [ProblemKind::MissingNode]);
}

#[test]
fn active_directory_settings_parse() {
    let ldap = |settings: &str| {
        with_source(&format!(
            "source \"ldap\" {{\n    url \"ldaps://dc1.corp.example.com\"\n    base-dn \"DC=corp,DC=example,DC=com\"\n{settings}}}\n"
        ))
    };
    let source = |text: &str| match parse_ok(text).source {
        SourceConfig::Ldap(ldap) => ldap,
        other => panic!("expected LDAP, got {other:?}"),
    };
    let plain = source(&ldap(""));
    assert_eq!(plain.active_directory, None);
    assert!(!plain.follow_referrals);

    let ad = source(&ldap("    active-directory #true\n"));
    assert_eq!(
        ad.active_directory,
        Some(ActiveDirectory {
            disabled: DisabledAccounts::Skip
        }),
        "disabled accounts are skipped by default"
    );
    let explicit = source(&ldap(
        "    active-directory #true\n    disabled \"skip\"\n    follow-referrals #true\n",
    ));
    assert_eq!(explicit.active_directory, ad.active_directory);
    assert!(explicit.follow_referrals);
    let inactive = source(&ldap(
        "    active-directory #true\n    disabled \"inactive\"\n",
    ));
    assert_eq!(
        inactive.active_directory,
        Some(ActiveDirectory {
            disabled: DisabledAccounts::Inactive
        }),
        "disabled accounts can be synced as inactive"
    );
}

/// One line per case: a source block, and the kinds of the problems it must cause.
#[test]
fn each_source_mistake_is_reported_with_its_kind() {
    use ProblemKind::*;
    let ad = "source \"ldap\" {\n    url \"ldaps://dc1\"\n    base-dn \"DC=corp\"\n";
    let cases: &[(String, &[ProblemKind])] = &[
        (
            format!("{ad}    disabled \"inactive\"\n}}\n"),
            &[InvalidValue],
        ),
        (format!("{ad}    disabled \"skip\"\n}}\n"), &[InvalidValue]),
        (
            format!("{ad}    active-directory #true\n    disabled \"skp\"\n}}\n"),
            &[InvalidValue],
        ),
        (
            format!("{ad}    active-directory \"yes\"\n}}\n"),
            &[WrongType],
        ),
        (
            format!("{ad}    follow-referals #true\n}}\n"),
            &[UnknownNode],
        ),
        (
            SERVICENOW.replace("    client-secret file=\"/run/secrets/sn-client\"\n", ""),
            &[MissingNode],
        ),
        (
            SERVICENOW.replace("    client-id \"3f2a9c0d\"\n", ""),
            &[MissingNode],
        ),
        (
            SERVICENOW.replace("    username \"roster.sync\"\n", ""),
            &[MissingNode],
        ),
        (
            SERVICENOW.replace("    password env=\"SN_PASSWORD\"\n", ""),
            &[MissingNode],
        ),
        (
            SERVICENOW.replace("client-secret file=", "client-secret "),
            &[InlineSecret],
        ),
        (
            SERVICENOW.replace("https://acme", "ftp://acme"),
            &[InvalidValue],
        ),
        (
            SERVICENOW.replace("page-size 200", "page-size 5000"),
            &[InvalidValue],
        ),
        (SERVICENOW.replace("query", "querry"), &[UnknownNode]),
        (
            SERVICENOW.replace("    timeout 10\n", "    api-key env=\"X\"\n"),
            &[UnknownNode],
        ),
        (
            FRESHSERVICE.replace("\"agents\"", "\"agent\""),
            &[InvalidValue],
        ),
        (
            FRESHSERVICE.replace("\"agents\"", "\"requesters\""),
            &[DuplicateNode],
        ),
        (
            FRESHSERVICE.replace("include \"requesters\" \"agents\"", "include"),
            &[MissingValue],
        ),
        (
            FRESHSERVICE.replace("page-size 50", "page-size 101"),
            &[InvalidValue],
        ),
        (
            FRESHSERVICE.replace("api-key env=", "api-key "),
            &[InlineSecret],
        ),
        (
            FRESHSERVICE.replace("freshservice\"", "freshservce\""),
            &[InvalidValue],
        ),
    ];
    for (source, want) in cases {
        let error = parse_err(&with_source(source));
        assert_eq!(kinds(&error), *want, "{source}\n{}", render(&error));
    }
}

#[test]
fn source_types_are_suggested_when_misspelled() {
    let error = parse_err(&with_source(
        &FRESHSERVICE.replace("freshservice\"", "fresh-service\""),
    ));
    let rendered = render(&error);
    assert!(
        rendered.contains("did you mean \"freshservice\"?"),
        "{rendered}"
    );
    let error = parse_err(&with_source(
        &SERVICENOW.replace("servicenow\"", "service-now\""),
    ));
    assert!(render(&error).contains("did you mean \"servicenow\"?"));
}

#[test]
fn group_blocks_of_rest_sources_take_their_own_nodes_and_defaults() {
    let sn = parse_ok(&format!(
        "{}group {{\n    query \"active=true^type=itil\"\n}}\n",
        with_source(SERVICENOW)
    ));
    let group = sn.group.expect("a group block");
    assert!(
        matches!(&group.scope, GroupScope::ServiceNow { query } if query.as_str() == "active=true^type=itil")
    );
    assert_eq!(
        (group.key.as_str(), group.name.as_str()),
        ("sys_id", "name")
    );
    let sn = parse_ok(&format!("{}group {{\n}}\n", with_source(SERVICENOW)));
    assert!(
        matches!(&sn.group.expect("group").scope, GroupScope::ServiceNow { query } if query.as_str() == "active=true"),
        "active groups by default"
    );

    let fs = parse_ok(&format!(
        "{}group {{\n    name \"description\"\n}}\n",
        with_source(FRESHSERVICE)
    ));
    let group = fs.group.expect("a group block");
    assert!(matches!(group.scope, GroupScope::Freshservice));
    assert_eq!(
        (group.key.as_str(), group.name.as_str()),
        ("id", "description")
    );
}

#[test]
fn group_nodes_of_another_kind_of_source_are_reported() {
    use ProblemKind::*;
    let ldap = "source \"ldap\" {\n    url \"ldaps://dc1\"\n    base-dn \"DC=corp\"\n}\n";
    let cases: &[(String, &[ProblemKind], &str)] = &[
        (
            format!(
                "{}group {{\n    base-dn \"ou=Groups\"\n    filter \"(cn=*)\"\n}}\n",
                with_source(SERVICENOW)
            ),
            &[UnknownNode, UnknownNode],
            "ServiceNow groups are chosen with an encoded query",
        ),
        (
            format!(
                "{}group {{\n    nested #true\n}}\n",
                with_source(SERVICENOW)
            ),
            &[UnknownNode],
            "only LDAP groups can contain groups",
        ),
        (
            format!(
                "{}group {{\n    query \"active=true\"\n}}\n",
                with_source(FRESHSERVICE)
            ),
            &[UnknownNode],
            "roster reads every Freshservice requester group",
        ),
        (
            format!(
                "{}group {{\n    base-dn \"ou=Groups\"\n    query \"active=true\"\n}}\n",
                with_source(ldap)
            ),
            &[UnknownNode],
            "is ServiceNow's encoded query on sys_user_group",
        ),
    ];
    for (text, want, help) in cases {
        let error = parse_err(text);
        assert_eq!(kinds(&error), *want, "{text}");
        let rendered = render(&error);
        assert!(rendered.contains(help), "{rendered}");
        assert!(
            rendered.contains("does not apply to the groups of"),
            "{rendered}"
        );
    }
}
