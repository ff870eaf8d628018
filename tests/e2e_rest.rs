//! End to end with a REST source: the real `roster` binary reading the ServiceNow and
//! Freshservice doubles and writing a real scim2-server, users and groups. Asserts what the
//! target holds afterwards.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use support::{expect_code, roster_in, text};

use serde_json::{Value, json};
use support::scim::ScimServer;
use support::vendors::{
    Fault, Freshservice, FreshserviceSetup, ServiceNow, ServiceNowSetup, fs_requester, sn_user,
};

const SN_PASSWORD_VAR: &str = "E2E_SN_PASSWORD";
const FS_API_KEY_VAR: &str = "E2E_FS_API_KEY";
const SCIM_TOKEN_VAR: &str = "E2E_SCIM_TOKEN";

struct World {
    servicenow: ServiceNow,
    scim: ScimServer,
    dir: tempfile::TempDir,
}

impl World {
    fn new(setup: ServiceNowSetup) -> World {
        World::with(setup, "")
    }

    /// A world whose roster.kdl ends with `extra` (a `group` block, a policy).
    fn with(setup: ServiceNowSetup, extra: &str) -> World {
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
    {roles}
}}
{extra}
"#,
            roles = if extra.contains("group {") {
                r#"role "Engineer" in-group="Engineering""#
            } else {
                ""
            },
            servicenow = world.servicenow.url(),
            scim = world.scim.url,
        );
        std::fs::write(world.dir.path().join("roster.kdl"), config).expect("write config");
        world
    }

    fn roster(&self, args: &[&str]) -> Output {
        roster_in(
            self.dir.path(),
            args,
            &[
                (
                    SN_PASSWORD_VAR,
                    ServiceNowSetup::default().password.as_str(),
                ),
                (SCIM_TOKEN_VAR, self.scim.token.as_str()),
            ],
        )
    }

    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        expect_code(&out, args, code);
        text(&out.stdout)
    }
}

/// Five users; `carol` is inactive.
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
        ..Default::default()
    });

    let plan = w.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.contains("Plan: 4 to add, 0 to update, 0 to remove, 0 to delete."),
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
        ["alice", "bob", "dave", "erin"],
        "inactive users are not read"
    );

    let alice = w.scim.user_by_username("alice").expect("alice");
    assert_eq!(
        alice["externalId"], "roster:roster:a1",
        "the sys_id is the key, with the owner"
    );
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

#[test]
fn a_servicenow_last_page_short_of_x_total_count_removes_nobody() {
    // Ten active users, pages of 2. Losing one row is 10%, within the default shrink guard:
    // only the X-Total-Count check stands between the lost row and a removal.
    let users: Vec<Value> = (0..10)
        .map(|i| {
            sn_user(
                &format!("s{i:02}"),
                &format!("user{i:02}"),
                "Some One",
                true,
            )
        })
        .collect();
    let w = World::with(
        ServiceNowSetup {
            users,
            ..Default::default()
        },
        "policy {\n    mode \"remove\"\n    max-removes 10\n}",
    );
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 10);

    w.servicenow.drop_from_last_page(1);
    let out = w.roster(&["sync", "--auto-approve"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("the read is incomplete"), "{stderr}");
    assert!(
        stderr.contains("counted 10 sys_user rows") && stderr.contains("but sent 9"),
        "{stderr}"
    );
    let users = w.scim.users();
    assert_eq!(users.len(), 10, "nobody deleted");
    assert!(
        users.iter().all(|u| u["active"] != false),
        "nobody deactivated: {users:?}"
    );
    let plan = w.roster(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(1),
        "nothing is planned from it either"
    );
}

/// The usernames of a SCIM group's members, through their ids.
fn member_names(scim: &ScimServer, group: &Value) -> BTreeSet<String> {
    let users = scim.users();
    group["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .filter_map(|m| m["value"].as_str())
                .map(|id| {
                    users
                        .iter()
                        .find(|u| u["id"].as_str() == Some(id))
                        .and_then(|u| u["userName"].as_str())
                        .unwrap_or_else(|| panic!("member {id} is not a user"))
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn group_named<'g>(groups: &'g [Value], name: &str) -> &'g Value {
    groups
        .iter()
        .find(|g| g["displayName"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no group {name} in {groups:#?}"))
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Engineering (alice, bob, carol who is inactive, and a sys_id nobody has), Sales (erin),
/// and Retired, an inactive group.
fn sn_groups() -> (Vec<Value>, Vec<Value>) {
    let groups = vec![
        json!({"sys_id": "g1", "name": "Engineering", "active": "true"}),
        json!({"sys_id": "g2", "name": "Retired", "active": "false"}),
        json!({"sys_id": "g3", "name": "Sales", "active": "true"}),
    ];
    let memberships = [
        ("g1", "a1"),
        ("g1", "b2"),
        ("g1", "c3"),
        ("g1", "ffff"),
        ("g2", "a1"),
        ("g3", "e5"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (group, user))| json!({"sys_id": format!("m{i}"), "group": group, "user": user}))
    .collect();
    (groups, memberships)
}

const SN_GROUPS: &str = r#"
group {
    query "active=true"
    name "name"
}
policy {
    group-all "Everyone"
}
"#;

#[test]
fn servicenow_groups_become_scim_groups_with_the_synced_members() {
    let (groups, memberships) = sn_groups();
    let w = World::with(
        ServiceNowSetup {
            // Without dave, who is in no group: Everyone is exactly the other three.
            users: people()
                .into_iter()
                .filter(|u| u["sys_id"] != "d4")
                .collect(),
            groups,
            memberships,
            ..Default::default()
        },
        SN_GROUPS,
    );

    let plan: Value =
        serde_json::from_str(&w.ok(&["plan", "--format", "json"], 0)).expect("plan JSON");
    assert_eq!(
        plan["summary"]["ignored_members"], 2,
        "carol (inactive) and an unknown sys_id are not synced users"
    );
    w.ok(&["apply", "--auto-approve"], 0);

    let groups = w.scim.groups();
    let mut group_names: Vec<&str> = groups
        .iter()
        .filter_map(|g| g["displayName"].as_str())
        .collect();
    group_names.sort();
    assert_eq!(
        group_names,
        ["Engineering", "Everyone", "Sales"],
        "the inactive group is not read"
    );
    let engineering = group_named(&groups, "Engineering");
    assert_eq!(
        engineering["externalId"], "g1",
        "the group's sys_id is its key"
    );
    assert_eq!(member_names(&w.scim, engineering), names(&["alice", "bob"]));
    assert_eq!(
        member_names(&w.scim, group_named(&groups, "Sales")),
        names(&["erin"])
    );
    assert_eq!(
        member_names(&w.scim, group_named(&groups, "Everyone")),
        names(&["alice", "bob", "erin"])
    );
    let alice = w.scim.user_by_username("alice").expect("alice");
    assert_eq!(
        alice["userType"], "Engineer",
        "in-group= roles see ServiceNow groups"
    );
    assert!(
        w.scim
            .user_by_username("erin")
            .expect("erin")
            .get("userType")
            .is_none(),
        "erin is not in Engineering"
    );

    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
}

#[test]
fn a_servicenow_group_read_that_fails_mid_paging_applies_nothing() {
    let (groups, memberships) = sn_groups();
    let w = World::with(
        ServiceNowSetup {
            users: people(),
            groups,
            memberships,
            // page-size 2: the second page of sys_user_grmember fails, every time.
            member_fault: Some(Fault {
                at: 2,
                times: u32::MAX,
            }),
            ..Default::default()
        },
        SN_GROUPS,
    );

    let out = w.roster(&["apply", "--auto-approve"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("the read is incomplete"), "{stderr}");
    assert!(stderr.contains("sys_user_grmember"), "{stderr}");
    assert!(w.scim.users().is_empty(), "no user is applied");
    assert!(w.scim.groups().is_empty(), "no group is applied");
}

#[test]
fn freshservice_requester_groups_become_scim_groups() {
    let freshservice = Freshservice::start(FreshserviceSetup {
        requesters: vec![
            fs_requester(101, "Andrea", "Lopez", true),
            fs_requester(102, "Bruno", "Meier", true),
            fs_requester(103, "Chiara", "Rossi", false),
            fs_requester(104, "Dmitri", "Volkov", true),
        ],
        groups: vec![
            (
                json!({"id": 7, "name": "Finance", "type": "manual"}),
                vec![101, 102, 103],
            ),
            (json!({"id": 9, "name": "Ops", "type": "manual"}), vec![104]),
        ],
        ..Default::default()
    });
    let scim = ScimServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
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
}}
group {{
    name "name"
}}
"#,
        url = freshservice.url(),
        scim_url = scim.url,
    );
    std::fs::write(dir.path().join("roster.kdl"), config).expect("write config");
    let roster = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(args)
            .current_dir(dir.path())
            .env(FS_API_KEY_VAR, FreshserviceSetup::default().api_key)
            .env(SCIM_TOKEN_VAR, &scim.token)
            .output()
            .expect("run roster");
        assert_eq!(
            out.status.code(),
            Some(0),
            "roster {args:?}\nstdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    let plan: Value = serde_json::from_str(&roster(&["plan", "--format", "json"])).expect("JSON");
    assert_eq!(
        plan["summary"]["ignored_members"], 1,
        "the deactivated requester is not a synced user"
    );
    roster(&["apply", "--auto-approve"]);
    let groups = scim.groups();
    let finance = group_named(&groups, "Finance");
    assert_eq!(finance["externalId"], "7", "the group's id is its key");
    assert_eq!(
        member_names(&scim, finance),
        names(&["andrea@example.com", "bruno@example.com"])
    );
    assert_eq!(
        member_names(&scim, group_named(&groups, "Ops")),
        names(&["dmitri@example.com"])
    );
    assert!(roster(&["plan"]).contains("No changes."));
}

/// `role "Full User" when="roles" contains="itil"`: ServiceNow roles, read from
/// `sys_user_has_role`, choose each account's licence type in scim2-server.
#[test]
fn servicenow_roles_choose_the_licence_type_in_the_target() {
    use support::vendors::sn_role;
    let world = World {
        servicenow: ServiceNow::start(ServiceNowSetup {
            users: people(),
            role_grants: vec![
                sn_role("r1", "a1", "itil", "active"),
                sn_role("r2", "a1", "admin", "active"),
                sn_role("r3", "b2", "knowledge", "active"),
                sn_role("r4", "d4", "itil", "requested"),
                sn_role("r5", "e5", "ITIL", "active"),
            ],
            ..Default::default()
        }),
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
    role "Full User" when="roles" contains="itil"
    role "Occasional User" default=#true
}}
"#,
        servicenow = world.servicenow.url(),
        scim = world.scim.url,
    );
    std::fs::write(world.dir.path().join("roster.kdl"), config).expect("write config");
    world.ok(&["apply", "--auto-approve"], 0);
    let licence = |name: &str| {
        world
            .scim
            .user_by_username(name)
            .unwrap_or_else(|| panic!("{name} in the target"))["userType"]
            .clone()
    };
    assert_eq!(licence("alice"), "Full User");
    assert_eq!(licence("bob"), "Occasional User", "knowledge is not itil");
    assert_eq!(
        licence("dave"),
        "Occasional User",
        "a requested grant is not a role yet"
    );
    assert_eq!(
        licence("erin"),
        "Full User",
        "role names compare without case"
    );
    assert!(
        world
            .servicenow
            .requests()
            .iter()
            .any(|r| r.path == "/api/now/table/sys_user_has_role"),
    );
}
