//! End to end against SCIM providers other than the reference server: the real `roster`
//! binary plans and applies a CSV export with group sync (`group-all`) into the quirks
//! double (`support/scim_double.rs`), configured like AWS IAM Identity Center and like a
//! provider whose filters answer nothing and which refuses PATCH; then a second plan must
//! be empty. Each test checks what the double holds.

mod support;

use std::path::Path;

use serde_json::Value;
use support::scim_double::{Filters, Quirks, ScimDouble, TOKEN};
use support::{expect_code, roster_in, text};

const TOKEN_VAR: &str = "E2E_DOUBLE_TOKEN";

const EXPORT: &str = "uid,cn,mail\n\
amy,Amy Pond,amy@example.com\n\
bea,Bea Smith,bea@example.com\n\
cid,Cid Jones,cid@example.com\n";

fn write_config(dir: &Path, url: &str, target_extra: &str) {
    write_config_with(dir, url, target_extra, "");
}

fn write_config_with(dir: &Path, url: &str, target_extra: &str, policy_extra: &str) {
    let config = format!(
        r#"
state "state.db"
source "csv" {{
    path "people.csv"
}}
target "scim" {{
    url "{url}"
    token env="{TOKEN_VAR}"
    page-size 2
{target_extra}
}}
user {{
    key "uid"
    username "uid"
    name "cn"
    email "mail"
}}
policy {{
    mode "remove"
    group-all "Everyone"
{policy_extra}
}}
"#
    );
    std::fs::write(dir.join("roster.kdl"), config).expect("write config");
    std::fs::write(dir.join("people.csv"), EXPORT).expect("write export");
}

fn roster(dir: &Path, args: &[&str], code: i32) -> String {
    let out = roster_in(dir, args, &[(TOKEN_VAR, TOKEN)]);
    expect_code(&out, args, code);
    text(&out.stdout)
}

fn members(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// plan, apply, a second plan with nothing to do; and an edit by hand is put right.
fn sync_twice(quirks: Quirks, target_extra: &str) {
    let double = ScimDouble::start(quirks);
    // A group that exists already, with a member added by hand who stays.
    let hand = double.insert(
        "Users",
        serde_json::json!({"userName": "zed", "displayName": "Zed"}),
    );
    double.insert(
        "Groups",
        serde_json::json!({"displayName": "Everyone", "members": [{"value": hand}]}),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    write_config(dir.path(), &double.url, target_extra);

    roster(dir.path(), &["plan", "--detailed-exitcode"], 2);
    let applied = roster(dir.path(), &["apply", "--auto-approve"], 0);
    assert!(applied.contains("0 failed"), "{applied}");

    let users = double.users();
    let managed: Vec<&Value> = users
        .iter()
        .filter(|u| u["externalId"].is_string())
        .collect();
    assert_eq!(managed.len(), 3, "{users:?}");
    let groups = double.groups();
    assert_eq!(
        groups.len(),
        1,
        "the existing group was adopted, not duplicated: {groups:?}"
    );
    assert_eq!(groups[0]["externalId"], "group-all:Everyone");
    let mut expected: Vec<String> = managed
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .chain([hand.clone()])
        .collect();
    expected.sort();
    assert_eq!(members(&groups[0]), expected);

    // Nothing to do the second time: memberships are read back, not planned again.
    let second = roster(dir.path(), &["plan", "--detailed-exitcode"], 0);
    assert!(!second.contains("membership"), "{second}");
}

#[test]
fn aws_like_provider_plans_nothing_the_second_time() {
    sync_twice(Quirks::aws(), "    provider \"aws\"");
}

/// Without a preset: the same AWS behaviour is seen (groups listed without members), and a
/// filter that answers nothing, value paths and PATCH refused are worked around.
#[test]
fn a_provider_with_quirks_and_no_preset_plans_nothing_the_second_time() {
    sync_twice(
        Quirks {
            filters: Filters::Empty,
            value_paths_refused: true,
            ..Quirks::default()
        },
        "",
    );
    sync_twice(Quirks::aws(), "");
}

/// A provider that ignores `active`: the remove fails saying so, the store records it, and
/// the next plan does not plan the same remove again silently: it is skipped with why.
#[test]
fn a_remove_the_target_ignores_fails_once_then_is_skipped_with_the_reason() {
    let double = ScimDouble::start(Quirks {
        ignore_active: true,
        ..Quirks::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    write_config_with(
        dir.path(),
        &double.url,
        "",
        "    max-removes 5\n    max-source-shrink-percent 50",
    );
    roster(dir.path(), &["apply", "--auto-approve"], 0);
    std::fs::write(
        dir.path().join("people.csv"),
        "uid,cn,mail\namy,Amy Pond,amy@example.com\nbea,Bea Smith,bea@example.com\n",
    )
    .expect("cid leaves the export");

    let applied = roster_in(
        dir.path(),
        &["apply", "--auto-approve"],
        &[(TOKEN_VAR, TOKEN)],
    );
    let out = text(&applied.stdout) + &text(&applied.stderr);
    assert_eq!(applied.status.code(), Some(1), "{out}");
    assert!(out.contains("ignored `active`"), "{out}");
    let cid = double
        .users()
        .into_iter()
        .find(|u| u["userName"] == "cid")
        .expect("cid");
    assert_eq!(
        cid["active"], true,
        "the provider kept the account in service"
    );

    let plan: Value = serde_json::from_str(&roster(dir.path(), &["plan", "--format", "json"], 0))
        .expect("plan JSON");
    let remove = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["username"] == "cid")
        .cloned()
        .expect("cid's remove is shown");
    assert_eq!(remove["status"], "skipped", "{remove}");
    let reason = remove["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the target ignores `active`") && reason.contains("mode delete"),
        "{reason}"
    );
    assert_eq!(plan["summary"]["remove"], 0, "{plan}");
}
