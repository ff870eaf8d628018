//! The `notify` block: what it accepts, and every way it can be wrong, each said at its line.

use std::path::Path;

use crate::config::{NotifyOn, SmtpTls, Webhook, parse};

const BASE: &str = r#"source "csv" { path "people.csv" }
target "scim" {
    url "https://example.com/scim/v2"
    token env="SCIM_TOKEN"
}
user {
    key "uid"
    username "uid"
}
"#;

fn with(notify: &str) -> String {
    format!("{BASE}notify {{\n{notify}\n}}\n")
}

fn problems(notify: &str) -> String {
    match parse(Path::new("roster.kdl"), &with(notify)) {
        Ok(_) => panic!("expected problems in {notify}"),
        Err(e) => format!("{:?}", miette::Report::new(e)),
    }
}

#[test]
fn a_full_block_is_read_with_its_defaults() {
    let text = with(
        r#"email "it-ops@example.com" "oncall@example.com" smtp="smtp.example.com:587" from="roster@example.com" {
        smtp-user "roster"
        smtp-password env="SMTP_PASSWORD"
    }
    email "audit@example.com" smtp="mail.example.com:465" from="roster@example.com"
    webhook "https://hooks.example.com/roster"
    webhook env="SLACK_WEBHOOK_URL""#,
    );
    let config = parse(Path::new("roster.kdl"), &text).expect("valid");
    let notify = config.notify.clone().expect("notify");
    assert_eq!(notify.on, NotifyOn::DEFAULT.to_vec());
    assert_eq!(notify.emails.len(), 2);
    assert_eq!(notify.emails[0].to.len(), 2);
    assert_eq!(notify.emails[0].tls, SmtpTls::StartTls, "587: STARTTLS");
    assert_eq!(notify.emails[1].tls, SmtpTls::Tls, "465: implicit TLS");
    assert_eq!(notify.emails[0].port, 587);
    assert!(notify.emails[0].password.is_some() && notify.emails[1].password.is_none());
    assert!(matches!(notify.webhooks[0], Webhook::Url(_)));
    assert!(matches!(notify.webhooks[1], Webhook::Secret(_)));
    assert!(
        config
            .secrets()
            .iter()
            .any(|(node, _)| *node == "smtp-password")
    );
}

#[test]
fn wrong_values_are_each_reported() {
    let report = problems(
        r#"email "not an address" smtp="smtp.example.com" from="roster@example.com" tls="ssl"
    webhook "ftp://hooks.example.com"
    on "changes" "sometimes""#,
    );
    for expected in [
        "\"not an address\" is not an email address",
        "`smtp=` is \"smtp.example.com\", not a host and port",
        "unknown tls \"ssl\"",
        "`webhook` must start with https:// or http://",
        "unknown notify event \"sometimes\"",
    ] {
        assert!(report.contains(expected), "{expected} in\n{report}");
    }
}

#[test]
fn an_smtp_password_is_never_inline_and_needs_its_user() {
    let report = problems(
        r#"email "a@example.com" smtp="smtp.example.com:587" from="r@example.com" {
        smtp-password "hunter2-inline"
    }"#,
    );
    assert!(report.contains("holds a secret written inline"), "{report}");
    assert!(!report.contains("hunter2-inline"), "masked: {report}");
    let report = problems(
        r#"email "a@example.com" smtp="smtp.example.com:587" from="r@example.com" {
        smtp-password env="P"
    }"#,
    );
    assert!(
        report.contains("`smtp-password` is given without `smtp-user`"),
        "{report}"
    );
}

#[test]
fn a_block_that_notifies_nobody_is_refused() {
    let report = problems("on \"always\"");
    assert!(
        report.contains("`notify` names nobody to notify"),
        "{report}"
    );
    let report = problems(r#"email "a@example.com" from="r@example.com""#);
    assert!(report.contains("has no `smtp=`"), "{report}");
}
