//! Group sync end to end: the real `roster` binary against a real slapd (groupOfNames,
//! groupOfUniqueNames, posixGroup) and a real scim2-server. Every test asserts what the
//! target's groups hold afterwards, by the target's user ids.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use support::{expect_code, roster_in, text};

use serde_json::{Value, json};
use support::scim::ScimServer;
use support::slapd::{BASE_DN, Slapd};

const LDAP_PASSWORD_VAR: &str = "E2E_LDAP_PASSWORD";
const SCIM_TOKEN_VAR: &str = "E2E_SCIM_TOKEN";

struct World {
    slapd: Slapd,
    scim: ScimServer,
    dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl World {
    /// A directory with `ldif` loaded (people and groups), a SCIM server, and a roster.kdl
    /// with `group` (a group block or nothing), `roles` (lines of the user block) and
    /// `policy` (the body of the policy block).
    fn new(ldif: &str) -> World {
        let world = World {
            slapd: Slapd::start_with_ldif(ldif),
            scim: ScimServer::start(),
            dir: tempfile::tempdir().expect("temp dir"),
            http: reqwest::blocking::Client::new(),
        };
        world.config(GROUPS, "", "");
        world
    }

    fn config(&self, group: &str, roles: &str, policy: &str) {
        let config = format!(
            r#"
state "state.db"
source "ldap" {{
    url "{url}"
    bind-dn "{admin}"
    bind-password env="{LDAP_PASSWORD_VAR}"
    base-dn "ou=People,{BASE_DN}"
    filter "(objectClass=inetOrgPerson)"
    timeout 5
}}
target "scim" {{
    url "{scim}"
    token env="{SCIM_TOKEN_VAR}"
}}
user {{
    key "entryUUID"
    username "uid" normalize="lowercase"
    name "cn"
    email "mail"
    {roles}
}}
{group}
policy {{
    max-source-shrink-percent 100
    {policy}
}}
"#,
            url = self.slapd.url,
            admin = self.slapd.admin_dn,
            scim = self.scim.url,
        );
        std::fs::write(self.path("roster.kdl"), config).expect("write config");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn roster(&self, args: &[&str]) -> Output {
        roster_in(
            self.dir.path(),
            args,
            &[
                (LDAP_PASSWORD_VAR, self.slapd.admin_password.as_str()),
                (SCIM_TOKEN_VAR, self.scim.token.as_str()),
            ],
        )
    }

    /// Runs roster, checks its exit code, returns stdout (and stderr after a blank line).
    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        expect_code(&out, args, code);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        format!("{stdout}\n{stderr}")
    }

    fn plan_json(&self) -> Value {
        let out = self.roster(&["plan", "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("plan JSON")
    }

    fn scim_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.scim.url))
            .bearer_auth(&self.scim.token)
            .send()
            .expect("GET");
        assert!(response.status().is_success(), "GET {path}");
        response.json().expect("JSON")
    }

    fn scim_send(&self, method: reqwest::Method, path: &str, body: Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.scim.url))
            .bearer_auth(&self.scim.token)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .expect("request");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    /// Every target group, all pages.
    fn groups(&self) -> Vec<Value> {
        let mut groups = Vec::new();
        loop {
            let page = self.scim_get(&format!("/Groups?startIndex={}&count=50", groups.len() + 1));
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            if resources.is_empty() {
                return groups;
            }
            groups.extend(resources);
            if groups.len() as u64 >= page["totalResults"].as_u64().unwrap_or(0) {
                return groups;
            }
        }
    }

    fn group(&self, name: &str) -> Option<Value> {
        self.groups()
            .into_iter()
            .find(|g| g["displayName"].as_str() == Some(name))
    }

    /// The usernames of a target group's members, by resolving their ids.
    fn members(&self, name: &str) -> BTreeSet<String> {
        let group = self
            .group(name)
            .unwrap_or_else(|| panic!("no group {name} in the target"));
        member_ids(&group)
            .iter()
            .map(|id| {
                self.scim
                    .users()
                    .into_iter()
                    .find(|u| u["id"].as_str() == Some(id.as_str()))
                    .and_then(|u| u["userName"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("?{id}"))
            })
            .collect()
    }

    fn user_id(&self, username: &str) -> String {
        self.scim
            .user_by_username(username)
            .and_then(|u| u["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("{username} is not in the target"))
    }

    fn entry_uuid(&self, dn: &str) -> String {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &self.slapd.url,
                "-D",
                &self.slapd.admin_dn,
            ])
            .args([
                "-w",
                &self.slapd.admin_password,
                "-s",
                "base",
                "-b",
                dn,
                "entryUUID",
            ])
            .output()
            .expect("ldapsearch");
        text(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("entryUUID: "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no entryUUID for {dn}"))
    }
}

const GROUPS: &str = r#"group {
    base-dn "ou=Groups,dc=example,dc=com"
}"#;

fn member_ids(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `action object username status` per action of a JSON plan.
fn actions(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("?").to_string();
            format!(
                "{} {} {} {}",
                s("action"),
                s("object"),
                s("username"),
                s("status")
            )
        })
        .collect()
}

fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=People,{BASE_DN}")
}

fn group_dn(cn: &str) -> String {
    format!("cn={cn},ou=Groups,{BASE_DN}")
}

/// An inetOrgPerson with an optional title.
fn person(uid: &str, title: Option<&str>) -> String {
    let title = title.map(|t| format!("title: {t}\n")).unwrap_or_default();
    format!(
        "dn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Example\nsn: Example\nmail: {uid}@example.com\n{title}\n",
        user_dn(uid)
    )
}

/// A groupOfNames whose members are `uid`s of people or `@cn`s of groups.
fn group_of_names(cn: &str, members: &[&str]) -> String {
    let mut ldif = format!(
        "dn: {}\nobjectClass: groupOfNames\ncn: {cn}\n",
        group_dn(cn)
    );
    for m in members {
        let dn = match m.strip_prefix('@') {
            Some(group) => group_dn(group),
            None => user_dn(m),
        };
        ldif.push_str(&format!("member: {dn}\n"));
    }
    ldif.push('\n');
    ldif
}

fn posix_group(cn: &str, gid: u32, uids: &[&str]) -> String {
    let mut ldif = format!(
        "dn: {}\nobjectClass: posixGroup\ncn: {cn}\ngidNumber: {gid}\n",
        group_dn(cn)
    );
    for uid in uids {
        ldif.push_str(&format!("memberUid: {uid}\n"));
    }
    ldif.push('\n');
    ldif
}

fn people(uids: &[&str]) -> String {
    uids.iter().map(|u| person(u, None)).collect()
}

#[test]
fn groups_and_their_members_are_created_with_scim_ids() {
    let ldif = people(&["alice", "bob", "carol"])
        + &group_of_names("Sales", &["alice", "bob"])
        + &posix_group("Ops", 5000, &["carol", "Alice", "ghost"])
        + &format!(
            "dn: {}\nobjectClass: groupOfUniqueNames\ncn: Mixed\nuniqueMember: UID=Bob, OU=People, {BASE_DN}#'0101'B\n\n",
            group_dn("Mixed")
        );
    let w = World::new(&ldif);
    // Someone outside the user search: not a synced user, ignored and counted.
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: uid=zed,ou=Elsewhere,{BASE_DN}\n",
        group_dn("Sales")
    ));

    let human = w.ok(&["plan", "--detailed-exitcode"], 2);
    for line in [
        "  + group Sales\n",
        "  + group Ops\n",
        "  + membership alice → Sales\n",
        "  + membership bob → Mixed\n",
        "  + membership alice → Ops\n",
    ] {
        assert!(human.contains(line), "{line:?} in:\n{human}");
    }
    assert!(
        human.contains(
            "Plan: 11 to add, 0 to update, 0 to remove, 0 to delete. Of these, groups: 3 to add, \
             0 to update, 0 to delete; memberships: 5 to add, 0 to remove. 2 group members are \
             not synced users (ignored)."
        ),
        "{human}"
    );
    assert!(w.groups().is_empty(), "plan must not touch the target");

    let applied = w.ok(&["apply", "--auto-approve"], 0);
    assert!(applied.contains("11 applied, 0 failed"), "{applied}");
    let sales = w.group("Sales").expect("Sales");
    assert_eq!(sales["externalId"], w.entry_uuid(&group_dn("Sales")));
    assert_eq!(
        member_ids(&sales),
        [w.user_id("alice"), w.user_id("bob")].into_iter().collect()
    );
    assert_eq!(w.members("Ops"), names(&["alice", "carol"]));
    assert_eq!(w.members("Mixed"), names(&["bob"]));

    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
}

#[test]
fn a_member_removed_in_the_directory_is_one_removal_and_hand_added_members_stay() {
    let w = World::new(&(people(&["alice", "bob"]) + &group_of_names("Sales", &["alice", "bob"])));
    w.ok(&["apply", "--auto-approve"], 0);
    // Someone adds an account of their own to the managed group by hand.
    let byhand = w.scim.create_user(json!({"userName": "byhand"}));
    let sales_id = w.group("Sales").expect("Sales")["id"]
        .as_str()
        .expect("id")
        .to_string();
    w.scim_send(
        reqwest::Method::PATCH,
        &format!("/Groups/{sales_id}"),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "add", "path": "members", "value": [{"value": byhand["id"]}]}]}),
    );
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n",
        group_dn("Sales"),
        user_dn("bob")
    ));

    // add-only (the default) takes no membership away: the plan shows it, skipped.
    let plan = w.plan_json();
    assert_eq!(actions(&plan), ["remove membership bob skipped"]);
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.members("Sales"), names(&["alice", "bob", "byhand"]));

    w.config(GROUPS, "", "mode \"remove\"");
    let plan = w.plan_json();
    assert_eq!(actions(&plan), ["remove membership bob planned"]);
    let removal = &plan["actions"][0];
    assert_eq!(
        removal["changes"],
        json!([{"field": "group", "before": "Sales", "after": null},
               {"field": "member", "before": w.user_id("bob"), "after": null}])
    );
    let human = w.ok(&["plan"], 0);
    assert!(human.contains("  - membership bob → Sales\n"), "{human}");

    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.members("Sales"), names(&["alice", "byhand"]));
    let bob = w.scim.user_by_username("bob").expect("bob stays");
    assert_ne!(
        bob["active"], false,
        "leaving a group never removes the user"
    );
    w.ok(&["plan", "--detailed-exitcode"], 0);

    // A member whose directory record is rejected keeps the membership, and the plan says so.
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: not-an-address\n",
        user_dn("alice")
    ));
    let plan = w.plan_json();
    assert_eq!(
        actions(&plan),
        [
            "remove user alice skipped",
            "remove membership alice skipped"
        ]
    );
    assert!(
        plan["actions"][1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not removed from Sales: its source record was rejected")),
        "{plan}"
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.members("Sales"), names(&["alice", "byhand"]));
}

#[test]
fn a_renamed_group_is_updated_and_a_removed_one_deleted_only_in_delete_mode() {
    let w = World::new(
        &(people(&["alice"])
            + &group_of_names("Sales", &["alice"])
            + &group_of_names("Ops", &["alice"])),
    );
    w.ok(&["apply", "--auto-approve"], 0);

    // A rename in the directory (same entryUUID) is an update of the same target group.
    let sales_id = w.group("Sales").expect("Sales")["id"].clone();
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modrdn\nnewrdn: cn=Sales EU\ndeleteoldrdn: 1\n",
        group_dn("Sales")
    ));
    let plan = w.plan_json();
    assert_eq!(actions(&plan), ["update group Sales EU planned"]);
    assert_eq!(
        plan["actions"][0]["changes"],
        json!([{"field": "displayName", "before": "Sales", "after": "Sales EU"}])
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(w.group("Sales EU").expect("renamed")["id"], sales_id);

    w.slapd.delete(&group_dn("Ops"));

    for mode in ["add-only", "remove"] {
        w.config(GROUPS, "", &format!("mode \"{mode}\""));
        w.ok(&["apply", "--auto-approve"], 0);
        assert!(w.group("Ops").is_some(), "left in {mode} mode");
    }
    w.config(GROUPS, "", "mode \"delete\"");
    assert_eq!(actions(&w.plan_json()), ["delete group Ops planned"]);
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(w.group("Ops").is_none(), "deleted in delete mode");
    assert_eq!(w.members("Sales EU"), names(&["alice"]));
}

#[test]
fn nested_groups_are_flattened_and_a_cycle_does_not_loop() {
    // All contains Eng, Eng contains Ops, Ops contains All: a cycle.
    let w = World::new(
        &(people(&["alice", "bob", "carol"])
            + &group_of_names("All", &["@Eng"])
            + &group_of_names("Eng", &["alice", "@Ops"])
            + &group_of_names("Ops", &["carol", "@All"])
            + &group_of_names("Solo", &["bob"])),
    );
    w.config(
        "group {\n    base-dn \"ou=Groups,dc=example,dc=com\"\n    nested #true\n}",
        "",
        "",
    );
    let out = w.ok(&["apply", "--auto-approve"], 0);
    assert!(
        out.contains("nested groups form a cycle: All -> Eng -> Ops -> All"),
        "{out}"
    );
    for group in ["All", "Eng", "Ops"] {
        assert_eq!(w.members(group), names(&["alice", "carol"]), "{group}");
    }
    assert_eq!(w.members("Solo"), names(&["bob"]));
    w.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn role_rules_first_match_wins_default_and_in_group() {
    let w = World::new(
        &(person("alice", Some("Senior Engineer 4"))
            + &person("bob", Some("Engineer"))
            + &person("carol", None)
            + &posix_group("Admins", 5001, &["alice", "bob"])),
    );
    w.config(
        GROUPS,
        r#"role "Lead" when="title" contains="engineer 4"
    role "Admin" in-group="Admins"
    role "Staff" default=#true"#,
        "",
    );
    w.ok(&["apply", "--auto-approve"], 0);
    let user_type = |u: &str| w.scim.user_by_username(u).expect("user")["userType"].clone();
    assert_eq!(user_type("alice"), "Lead", "first match wins over in-group");
    assert_eq!(user_type("bob"), "Admin");
    assert_eq!(user_type("carol"), "Staff");

    // A changed title is an ordinary field update.
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: title\ntitle: Engineer 4\n",
        user_dn("bob")
    ));
    let plan = w.plan_json();
    assert_eq!(actions(&plan), ["update user bob planned"]);
    assert_eq!(
        plan["actions"][0]["changes"],
        json!([{"field": "userType", "before": "Admin", "after": "Lead"}])
    );
}

#[test]
fn member_removes_over_the_cap_are_held_until_forced() {
    let w = World::new(
        &(people(&["alice", "bob", "carol"])
            + &group_of_names("Sales", &["alice", "bob", "carol"])),
    );
    w.ok(&["apply", "--auto-approve"], 0);
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\nmember: {}\n",
        group_dn("Sales"),
        user_dn("bob"),
        user_dn("carol")
    ));
    w.config(GROUPS, "", "mode \"remove\"\n    max-member-removes 1");

    let human = w.ok(&["plan", "--out", "plan.json", "--detailed-exitcode"], 3);
    assert!(
        human.contains(
            "  - membership bob → Sales  (held: 2 member removes planned in Sales, max-member-removes is 1)"
        ),
        "{human}"
    );
    let out = w.roster(&["apply", "plan.json", "--allow-removes", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        w.members("Sales"),
        names(&["alice", "bob", "carol"]),
        "nothing applied"
    );

    let applied = w.ok(&["apply", "plan.json", "--force"], 0);
    assert!(applied.contains("2 applied, 0 failed"), "{applied}");
    assert_eq!(w.members("Sales"), names(&["alice"]));
}

#[test]
fn group_all_puts_every_synced_user_in_one_group() {
    // More users than one member PATCH may carry (100), all created by the same plan.
    let uids: Vec<String> = (1..=105).map(|i| format!("user{i:03}")).collect();
    let uid_refs: Vec<&str> = uids.iter().map(String::as_str).collect();
    let w = World::new(&people(&uid_refs));
    w.config("", "", "group-all \"Sales\"");

    let human = w.ok(&["plan"], 0);
    assert!(human.contains("  + group Sales\n"), "{human}");
    assert!(
        human.contains("  + membership user001 → Sales\n"),
        "{human}"
    );
    w.ok(&["apply", "--auto-approve"], 0);
    let sales = w.group("Sales").expect("Sales");
    assert_eq!(sales["externalId"], "group-all:Sales");
    assert_eq!(member_ids(&sales).len(), 105);
    let ids: BTreeSet<String> = w
        .scim
        .users()
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(member_ids(&sales), ids);

    // A new user joins the group in the same apply that creates the account.
    w.slapd.add(&person("zoe", None));
    assert_eq!(
        actions(&w.plan_json()),
        ["add user zoe planned", "add membership zoe planned"]
    );
    w.ok(&["apply", "--auto-approve"], 0);
    let sales = w.group("Sales").expect("Sales");
    assert!(member_ids(&sales).contains(&w.user_id("zoe")));
    assert_eq!(member_ids(&sales).len(), 106);
}

#[test]
fn a_group_without_a_name_is_rejected_counted_and_listed() {
    let w = World::new(
        &(people(&["alice"])
            + &group_of_names("Sales", &["alice"])
                .replace("cn: Sales\n", "cn: Sales\ndescription: Sales team\n")
            + &group_of_names("Ops", &["alice"])),
    );
    w.config(
        "group {\n    base-dn \"ou=Groups,dc=example,dc=com\"\n    name \"description\"\n}",
        "",
        "",
    );
    let plan = w.plan_json();
    assert_eq!(plan["summary"]["rejected"], 1, "{plan}");
    let human = w.ok(&["plan"], 0);
    assert!(human.contains("1 rejected record"), "{human}");
    w.ok(&["apply", "--auto-approve"], 0);
    assert!(w.group("Sales team").is_some());
    assert!(
        w.group("Ops").is_none(),
        "the nameless group is not created"
    );
}

#[test]
fn a_member_group_outside_the_group_base_is_followed_when_nested() {
    // Eng (in ou=Groups) holds alice and the team Platform, which is kept in ou=Teams:
    // outside the group base-dn and the user base-dn. Platform holds bob, and a DN that
    // names nothing.
    let teams = format!(
        "dn: ou=Teams,{BASE_DN}\nobjectClass: organizationalUnit\nou: Teams\n\n\
         dn: cn=Platform,ou=Teams,{BASE_DN}\nobjectClass: groupOfNames\ncn: Platform\n\
         member: {}\nmember: uid=ghost,ou=Gone,{BASE_DN}\n\n",
        user_dn("bob")
    );
    let eng = format!(
        "dn: {}\nobjectClass: groupOfNames\ncn: Eng\nmember: {}\nmember: cn=Platform,ou=Teams,{BASE_DN}\n\n",
        group_dn("Eng"),
        user_dn("alice")
    );
    let w = World::new(&(people(&["alice", "bob"]) + &teams + &eng));
    w.config(
        "group {\n    base-dn \"ou=Groups,dc=example,dc=com\"\n    nested #false\n}",
        "",
        "",
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        w.members("Eng"),
        names(&["alice"]),
        "not followed without nested"
    );
    w.config(
        "group {\n    base-dn \"ou=Groups,dc=example,dc=com\"\n    nested #true\n}",
        "",
        "",
    );
    w.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        w.members("Eng"),
        names(&["alice", "bob"]),
        "Platform stands for its members"
    );
    let groups: Vec<String> = w
        .scim
        .groups()
        .iter()
        .filter_map(|g| g["displayName"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        groups,
        ["Eng"],
        "the outside group is followed, not synced itself"
    );
    w.ok(&["plan", "--detailed-exitcode"], 0);
}
