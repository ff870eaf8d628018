//! End to end with a REST source: the real `roster` binary reading the ServiceNow double and
//! writing a real scim2-server. Asserts what the target holds afterwards.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::scim::ScimServer;
use support::vendors::{Fault, ServiceNow, ServiceNowSetup, sn_user};

const SN_PASSWORD_VAR: &str = "E2E_SN_PASSWORD";
const SCIM_TOKEN_VAR: &str = "E2E_SCIM_TOKEN";

struct World {
    servicenow: ServiceNow,
    scim: ScimServer,
    dir: tempfile::TempDir,
}

impl World {
    fn new(setup: ServiceNowSetup) -> World {
        let world = World {
            servicenow: ServiceNow::start(setup),
            scim: ScimServer::start(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let config = format!(
            r#"
state "state.db"
source "servicenow" {{
    url "{servicenow}"
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
    phone "phone" "mobile_phone"
    attribute "title" to="title"
}}
"#,
            servicenow = world.servicenow.url(),
            scim = world.scim.url,
        );
        std::fs::write(world.dir.path().join("roster.kdl"), config).expect("write config");
        world
    }

    fn roster(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(args)
            .current_dir(self.dir.path())
            .env(SN_PASSWORD_VAR, ServiceNowSetup::default().password)
            .env(SCIM_TOKEN_VAR, &self.scim.token)
            .output()
            .expect("run roster")
    }

    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(code),
            "roster {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Five users; `carol` is inactive, `dave` hidden by ACLs (a short page in the middle).
fn people() -> Vec<Value> {
    let mut users = vec![
        sn_user("a1", "Alice", "Alice Liddell", true),
        sn_user("b2", "bob", "Bob Builder", true),
        sn_user("c3", "carol", "Carol Danvers", false),
        sn_user("d4", "dave", "Dave Bowman", true),
        sn_user("e5", "erin", "Erin Brockovich", true),
    ];
    users[1]["mobile_phone"] = "+1 555 0199".into();
    users[4]["title"] = "Paralegal".into();
    users
}

#[test]
fn servicenow_users_are_created_in_the_scim_target() {
    let w = World::new(ServiceNowSetup {
        users: people(),
        hidden: ["d4".to_string()].into(),
        ..Default::default()
    });

    let plan = w.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.contains("Plan: 3 to add, 0 to update, 0 to remove, 0 to delete."),
        "{plan}"
    );
    w.ok(&["apply", "--auto-approve"], 0);

    let users = w.scim.users();
    let mut names: Vec<&str> = users
        .iter()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["alice", "bob", "erin"],
        "inactive and hidden users are not read"
    );

    let alice = w.scim.user_by_username("alice").expect("alice");
    assert_eq!(alice["externalId"], "a1", "the sys_id is the key");
    assert_eq!(alice["displayName"], "Alice Liddell");
    assert_eq!(alice["emails"][0]["value"], "Alice@example.com");
    assert_eq!(alice["phoneNumbers"][0]["value"], "+1 555 0100");
    assert_eq!(alice["title"], "Engineer");
    let bob = w.scim.user_by_username("bob").expect("bob");
    let phones: Vec<&str> = bob["phoneNumbers"]
        .as_array()
        .expect("phones")
        .iter()
        .filter_map(|p| p["value"].as_str())
        .collect();
    assert_eq!(phones, ["+1 555 0100", "+1 555 0199"]);
    assert_eq!(
        w.scim.user_by_username("erin").expect("erin")["title"],
        "Paralegal"
    );

    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
    let secret = ServiceNowSetup::default().password;
    assert!(!again.contains(&secret));
}

#[test]
fn a_servicenow_read_that_fails_mid_paging_applies_nothing() {
    let w = World::new(ServiceNowSetup {
        users: people(),
        fault: Some(Fault {
            at: 2,
            times: u32::MAX,
        }),
        ..Default::default()
    });

    let out = w.roster(&["apply", "--auto-approve"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("the read is incomplete"), "{stderr}");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(!stderr.contains(&ServiceNowSetup::default().password));
    assert!(
        w.scim.users().is_empty(),
        "nothing is applied from a partial read"
    );
}
