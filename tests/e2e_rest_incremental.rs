//! Incremental reads of the REST sources end to end: the real `roster` binary reading the
//! ServiceNow double (`sys_updated_on>=` in `sysparm_query`) and the Freshservice double
//! (`updated_since`) and writing a real scim2-server. Every test asserts what the target
//! holds afterwards, that only what changed is planned, and that a change that takes a user
//! out of the source (a deactivation) is planned as a remove while a row deleted outright
//! waits for the next complete read.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::scim::ScimServer;
use support::vendors::{
    Freshservice, FreshserviceSetup, ServiceNow, ServiceNowSetup, fs_requester, sn_user,
};
use support::world::{actions, active};
use support::{expect_code, roster_in, text};

const SN_PASSWORD_VAR: &str = "E2E_SN_PASSWORD";
const FS_API_KEY_VAR: &str = "E2E_FS_API_KEY";
const SCIM_TOKEN_VAR: &str = "E2E_SCIM_TOKEN";

const INCREMENTAL: &str =
    "policy {\n    mode \"remove\"\n    max-removes 5\n    read \"incremental\"\n}";

struct Run<'a> {
    dir: &'a Path,
    scim: &'a ScimServer,
}

impl Run<'_> {
    fn roster(&self, args: &[&str]) -> Output {
        roster_in(
            self.dir,
            args,
            &[
                (
                    SN_PASSWORD_VAR,
                    ServiceNowSetup::default().password.as_str(),
                ),
                (
                    FS_API_KEY_VAR,
                    FreshserviceSetup::default().api_key.as_str(),
                ),
                (SCIM_TOKEN_VAR, self.scim.token.as_str()),
            ],
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.roster(args);
        expect_code(&out, args, 0);
        text(&out.stdout)
    }

    fn plan(&self) -> Value {
        serde_json::from_str(&self.ok(&["plan", "--format", "json"])).expect("plan JSON")
    }

    fn sync(&self) {
        self.ok(&["sync", "--auto-approve"]);
    }

    fn user(&self, username: &str) -> Value {
        self.scim
            .user_by_username(username)
            .unwrap_or_else(|| panic!("{username} is in the target"))
    }

    /// Rewrites one column of the newest recorded read, as damage would.
    fn set_last_read(&self, column: &str, value: &str) {
        let db = rusqlite::Connection::open(self.dir.join("state.db")).expect("state store");
        db.execute(
            &format!(
                "UPDATE source_reads SET {column} = ?1 WHERE run_id = (SELECT max(run_id) FROM source_reads)"
            ),
            [value],
        )
        .expect("update");
    }
}

fn note_starting(plan: &Value, prefix: &str) -> String {
    let notes: Vec<String> = plan["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    notes
        .iter()
        .find(|n| n.starts_with(prefix))
        .cloned()
        .unwrap_or_else(|| panic!("no note starting {prefix:?} in {notes:?}"))
}

fn servicenow_config(dir: &Path, url: &str, scim: &ScimServer, policy: &str) {
    let config = format!(
        r#"
state "state.db"
source "servicenow" {{
    url "{url}"
    username "roster.sync"
    password env="{SN_PASSWORD_VAR}"
    query "active=true"
    page-size 2
    timeout 5
}}
target "scim" {{
    url "{scim}"
    token env="{SCIM_TOKEN_VAR}"
}}
user {{
    key "sys_id"
    username "user_name" normalize="lowercase"
    name "name"
    email "email"
    attribute "title" to="title"
}}
{policy}
"#,
        scim = scim.url,
    );
    std::fs::write(dir.join("roster.kdl"), config).expect("write config");
}

#[test]
fn servicenow_incremental_reads_plan_only_changes_and_deactivations() {
    let servicenow = ServiceNow::start(ServiceNowSetup {
        users: vec![
            sn_user("a1", "alice", "Alice Liddell", true),
            sn_user("b2", "bob", "Bob Builder", true),
            sn_user("c3", "carol", "Carol Danvers", false),
            sn_user("d4", "dave", "Dave Bowman", true),
            sn_user("e5", "erin", "Erin Brockovich", true),
        ],
        ..Default::default()
    });
    let scim = ScimServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let run = Run {
        dir: dir.path(),
        scim: &scim,
    };
    servicenow_config(dir.path(), servicenow.url(), &scim, INCREMENTAL);

    let first = run.plan();
    assert_eq!(
        note_starting(&first, "complete read:"),
        "complete read: there is no earlier good read to start from"
    );
    run.sync();
    assert_eq!(scim.users().len(), 4);

    servicenow.change_user("b2", &[("title", "Site Manager")]);
    let before = servicenow.user_requests().len();
    let plan = run.plan();
    assert_eq!(actions(&plan), ["update user bob planned"]);
    assert!(note_starting(&plan, "incremental read:").contains("0 deletes"));
    let asked: Vec<String> = servicenow.user_requests()[before..]
        .iter()
        .filter_map(|r| r.param("sysparm_query").map(str::to_string))
        .collect();
    assert!(
        asked.iter().all(|q| q.contains("sys_updated_on>=")),
        "an incremental read asks only for changed rows: {asked:?}"
    );
    assert!(
        asked
            .iter()
            .any(|q| q.starts_with("active=true^sys_updated_on>=")),
        "the configured query is narrowed, not replaced: {asked:?}"
    );
    run.sync();
    assert_eq!(run.user("bob")["title"], "Site Manager");

    // A deactivation takes dave out of `active=true`: the instance says the row changed and
    // it is not selected now, an explicit signal, planned as a remove under the caps.
    servicenow.change_user("d4", &[("active", "false")]);
    let plan = run.plan();
    assert_eq!(actions(&plan), ["remove user dave planned"]);
    assert!(note_starting(&plan, "incremental read:").contains("1 delete"));
    run.sync();
    assert!(
        !active(&run.user("dave")),
        "dave was deactivated in the target"
    );
    assert!(active(&run.user("alice")) && active(&run.user("erin")));

    // A row deleted outright leaves nothing to find by time: nothing is removed.
    servicenow.delete_user("e5");
    let plan = run.plan();
    assert!(actions(&plan).is_empty(), "{:?}", actions(&plan));
    assert!(
        note_starting(&plan, "incremental read:").contains("nothing is removed for being absent")
    );
    run.sync();
    assert!(
        active(&run.user("erin")),
        "erin stays until a complete read"
    );

    // A new user is read as a change.
    servicenow.change_user(
        "f6",
        &[
            ("user_name", "frank"),
            ("name", "Frank Poole"),
            ("email", "frank@example.com"),
            ("title", "Pilot"),
            ("active", "true"),
        ],
    );
    let plan = run.plan();
    assert_eq!(actions(&plan), ["add user frank planned"]);
    run.sync();
    assert_eq!(run.user("frank")["displayName"], "Frank Poole");

    // A damaged cookie falls back to a complete read, which sees erin gone.
    run.set_last_read("cookie", "servicenow-sys-updated-on:yesterday");
    servicenow_config(
        dir.path(),
        servicenow.url(),
        &scim,
        "policy {\n    mode \"remove\"\n    max-removes 5\n    max-source-shrink-percent 50\n    read \"incremental\"\n}",
    );
    let plan = run.plan();
    let note = note_starting(&plan, "complete read:");
    assert!(note.contains("the config changed"), "{note}");
    assert_eq!(actions(&plan), ["remove user erin planned"]);
    run.sync();
    assert!(!active(&run.user("erin")), "the complete read removed erin");

    run.set_last_read("cookie", "servicenow-sys-updated-on:yesterday");
    let note = note_starting(&run.plan(), "complete read:");
    assert!(
        note.contains("cannot be used") && note.contains("not a date-time"),
        "{note}"
    );
    assert!(active(&run.user("alice")) && active(&run.user("bob")));
    assert!(active(&run.user("frank")));
}

#[test]
fn freshservice_incremental_reads_ask_updated_since_and_honour_deactivations() {
    let freshservice = Freshservice::start(FreshserviceSetup {
        requesters: vec![
            fs_requester(101, "Andrea", "Lopez", true),
            fs_requester(102, "Bruno", "Meier", true),
            fs_requester(103, "Chiara", "Rossi", true),
        ],
        ..Default::default()
    });
    let scim = ScimServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let run = Run {
        dir: dir.path(),
        scim: &scim,
    };
    let config = format!(
        r#"
state "state.db"
source "freshservice" {{
    url "{url}"
    api-key env="{FS_API_KEY_VAR}"
    page-size 2
    timeout 5
}}
target "scim" {{
    url "{scim_url}"
    token env="{SCIM_TOKEN_VAR}"
}}
user {{
    key "id"
    username "primary_email" normalize="lowercase"
    email "primary_email"
    attribute "job_title" to="title"
}}
{INCREMENTAL}
"#,
        url = freshservice.url(),
        scim_url = scim.url,
    );
    std::fs::write(dir.path().join("roster.kdl"), config).expect("write config");

    run.sync();
    assert_eq!(scim.users().len(), 3);

    freshservice.change_requester(102, &[("job_title", json!("Controller"))]);
    let before = freshservice.requests().len();
    let plan = run.plan();
    assert_eq!(actions(&plan), ["update user bruno@example.com planned"]);
    // The cookie's own second is read again (all three were last updated in it).
    let note = note_starting(&plan, "incremental read:");
    assert!(note.contains("changed records and 0 deletes"), "{note}");
    let since: Vec<Option<String>> = freshservice.requests()[before..]
        .iter()
        .map(|r| r.param("updated_since").map(str::to_string))
        .collect();
    assert!(
        !since.is_empty() && since.iter().all(Option::is_some),
        "every request of an incremental read filters by updated_since: {since:?}"
    );
    run.sync();
    assert_eq!(run.user("bruno@example.com")["title"], "Controller");

    freshservice.change_requester(103, &[("active", json!(false))]);
    let plan = run.plan();
    assert_eq!(actions(&plan), ["remove user chiara@example.com planned"]);
    run.sync();
    assert!(!active(&run.user("chiara@example.com")));
    assert!(active(&run.user("andrea@example.com")));

    run.set_last_read("cookie", "freshservice-updated-at:2024-02-30T00:00:00Z");
    let note = note_starting(&run.plan(), "complete read:");
    assert!(note.contains("not an RFC 3339 time"), "{note}");
    assert!(active(&run.user("bruno@example.com")));
}
