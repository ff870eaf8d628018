//! End to end from a real slapd to the LoginTC double: the User Sync Tool's semantics
//! (add = create or adopt, join the domain, token per token-mode; remove = leave the domain;
//! delete = leave and delete), ownership without externalIds, and the bad-input messages.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::logintc::{DOMAIN, LoginTcDouble};
use support::slapd::{Slapd, person};
use support::text;

const LDAP_VAR: &str = "E2E_LDAP_PASSWORD";
const KEY_VAR: &str = "E2E_LOGINTC_KEY";

struct World {
    slapd: Slapd,
    ltc: LoginTcDouble,
    dir: tempfile::TempDir,
    key: String,
}

impl World {
    fn new() -> World {
        let slapd = Slapd::start();
        for (uid, cn) in [
            ("alice", "Alice Liddell"),
            ("bob", "Bob Builder"),
            ("carol", "Carol Danvers"),
        ] {
            slapd.add(&person(uid, cn, Some(&format!("{uid}@example.com")), &[]));
        }
        let ltc = LoginTcDouble::start();
        let world = World {
            key: ltc.key.clone(),
            slapd,
            ltc,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        world.config("roster.kdl", "", "");
        world
    }

    /// Writes a config: the LDAP source, the LoginTC target (with `target` extra nodes) and
    /// an inline policy.
    fn config(&self, file: &str, target: &str, policy: &str) {
        let config = format!(
            r#"
state "state.db"
source "ldap" {{
    url "{url}"
    bind-dn "{admin}"
    bind-password env="{LDAP_VAR}"
    base-dn "ou=People,{base}"
    filter "(objectClass=inetOrgPerson)"
}}
target "logintc" {{
    url "{ltc}"
    api-key env="{KEY_VAR}"
    domain "{DOMAIN}"
    {target}
}}
user {{
    key "entryUUID"
    username "uid" normalize="lowercase"
    name "cn"
    email "mail"
}}
policy {{
    {policy}
}}
"#,
            url = self.slapd.url,
            admin = self.slapd.admin_dn,
            base = self.slapd.base_dn,
            ltc = self.ltc.url,
        );
        std::fs::write(self.path(file), config).expect("write config");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env(LDAP_VAR, &self.slapd.admin_password)
            .env(KEY_VAR, &self.key);
        command
    }

    fn roster(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run roster")
    }

    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        support::expect_code(&out, args, code);
        text(&out.stdout)
    }

    fn plan_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["plan", "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args, 0)).expect("plan JSON")
    }

    fn sync(&self) -> String {
        self.ok(&["sync", "--auto-approve"], 0)
    }

    fn dn(&self, uid: &str) -> String {
        format!("uid={uid},ou=People,{}", self.slapd.base_dn)
    }
}

fn actions(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["action"].as_str().unwrap_or("?"),
                a["username"].as_str().unwrap_or("?"),
                a["status"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn first_sync_joins_the_domain_through_paging_and_429_and_the_second_plan_is_empty() {
    let w = World::new();
    // The first request is shed with 429 and Retry-After: the sync still goes through.
    w.ltc.throttle(1);
    w.sync();
    assert_eq!(w.ltc.members(), ["alice", "bob", "carol"]);
    let alice = w.ltc.user("alice").expect("alice");
    assert_eq!(
        (alice.name.as_str(), alice.email.as_str()),
        ("Alice Liddell", "alice@example.com")
    );
    // token-mode "none" (the default): no token issued.
    assert_eq!(w.ltc.token("alice"), None);
    // Three members over pages of two, read whole: nothing to do the second time.
    w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(
        !w.ltc.bulk_replace_called(),
        "PUT /domains/{{d}}/users is never used"
    );
    let throttled = w.ltc.requests().len();
    assert!(throttled > 3, "{throttled}");
}

#[test]
fn name_and_email_changes_are_updates_and_a_hand_edit_makes_a_saved_plan_stale() {
    let w = World::new();
    w.sync();
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Robert Builder\n-\nreplace: mail\nmail: robert@example.com\n",
        w.dn("bob")
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update bob planned"]);
    w.ok(&["plan", "--out", "plan.json"], 0);
    // Someone edits bob in LoginTC Admin after the review: the content digest changed.
    w.ltc.set_email("bob", "bob@elsewhere.example.com");
    let out = w.roster(&["apply", "plan.json", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stale"), "{}", text(&out.stderr));
    assert_eq!(
        w.ltc.user("bob").expect("bob").email,
        "bob@elsewhere.example.com"
    );

    w.sync();
    let bob = w.ltc.user("bob").expect("bob");
    assert_eq!(
        (bob.name.as_str(), bob.email.as_str()),
        ("Robert Builder", "robert@example.com")
    );
}

#[test]
fn a_rename_in_the_directory_is_skipped_at_plan_time_since_logintc_cannot_rename() {
    let w = World::new();
    w.sync();
    let bob_id = w.ltc.user("bob").expect("bob").id.clone();
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n",
        w.dn("bob")
    ));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["update robert skipped"]);
    let reason = plan["actions"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the target cannot change a username")
            && reason.contains("delete the account in the target"),
        "{reason}"
    );
    assert_eq!(
        plan["actions"][0]["changes"][0],
        json!({"field": "username", "before": "bob", "after": "robert"})
    );
    let human = w.ok(&["plan"], 0);
    assert!(
        human.contains("user robert  (skipped: renamed in the source"),
        "{human}"
    );

    // Applying sends nothing that LoginTC would refuse: bob stays as he is.
    let out = w.roster(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bob = w.ltc.user("bob").expect("bob is kept");
    assert_eq!(bob.id, bob_id);
    assert!(w.ltc.user("robert").is_none(), "no second user");
    assert_eq!(w.ltc.members(), ["alice", "bob", "carol"]);
}

#[test]
fn remove_mode_takes_users_out_of_the_domain_revoking_the_token_and_keeps_them() {
    let w = World::new();
    w.config("roster.kdl", r#"token-mode "without-email""#, "");
    w.sync();
    let token = w.ltc.token("bob").expect("bob has a token");
    assert_eq!(token.state, "pending");
    assert_eq!(token.code.len(), 10);
    assert!(
        !token.body_sent,
        "the documented token call has no body: nothing invented is sent"
    );

    w.slapd.delete(&w.dn("bob"));
    w.config(
        "roster.kdl",
        r#"token-mode "without-email""#,
        r#"mode "remove"
    max-removes 5
    max-source-shrink-percent 50"#,
    );
    let human = w.ok(&["plan"], 0);
    assert!(
        human.contains("- user bob  (leaves domain Office VPN, token revoked)"),
        "{human}"
    );
    w.sync();
    assert_eq!(w.ltc.members(), ["alice", "carol"]);
    assert_eq!(
        w.ltc.token("bob"),
        None,
        "leaving the domain revokes the token"
    );
    assert!(
        w.ltc.user("bob").is_some(),
        "the user stays in the organization"
    );
}

#[test]
fn delete_mode_also_deletes_the_user() {
    let w = World::new();
    w.config("roster.kdl", r#"token-mode "without-email""#, "");
    w.sync();
    assert!(w.ltc.token("carol").is_some());

    w.slapd.delete(&w.dn("carol"));
    w.config(
        "roster.kdl",
        r#"token-mode "without-email""#,
        r#"mode "delete"
    max-removes 5
    max-source-shrink-percent 50"#,
    );
    let human = w.ok(&["plan"], 0);
    assert!(human.contains("deleted from the organization"), "{human}");
    w.sync();
    assert_eq!(w.ltc.members(), ["alice", "bob"]);
    assert!(
        w.ltc.user("carol").is_none(),
        "deleted from the organization"
    );
}

#[test]
fn hand_added_members_are_never_removed_and_matching_ones_are_adopted() {
    let w = World::new();
    // Someone added these two by hand before roster ran: alice matches a source user.
    w.ltc.add_member("alice", "Alice L.", "alice@example.com");
    w.ltc
        .add_member("mallory", "Mallory", "mallory@example.com");
    w.config(
        "roster.kdl",
        "",
        r#"mode "delete"
    max-removes 5
    max-source-shrink-percent 50"#,
    );

    // No ownership records yet: nothing is removed, and the plan says why.
    let human = w.ok(&["plan"], 0);
    assert!(human.contains("Note: nothing is removed"), "{human}");
    let plan = w.plan_json(&[]);
    let mut planned = actions(&plan);
    planned.sort();
    assert_eq!(
        planned,
        [
            "add bob planned",
            "add carol planned",
            "update alice planned"
        ]
    );
    assert_eq!(plan["summary"]["unmanaged"], 1, "mallory is reported");
    w.sync();

    // alice is roster's now: when she leaves the source she is deleted; mallory never is.
    w.slapd.delete(&w.dn("alice"));
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), ["delete alice planned"]);
    w.sync();
    assert_eq!(w.ltc.members(), ["bob", "carol", "mallory"]);
    assert!(w.ltc.user("mallory").is_some());
}

#[test]
fn two_owners_share_a_domain_without_removing_each_other() {
    let w = World::new();
    // Contractors come from a CSV, under their own config (owner "contractors", from the
    // file name), with its own state store.
    std::fs::write(
        w.path("contractors.csv"),
        "id,login,cn,mail\nc-1,zed,Zed Contractor,zed@example.com\n",
    )
    .expect("csv");
    let contractors = format!(
        r#"
state "contractors.db"
source "csv" {{
    path "contractors.csv"
}}
target "logintc" {{
    url "{}"
    api-key env="{KEY_VAR}"
    domain "{DOMAIN}"
}}
user {{
    key "id"
    username "login"
    name "cn"
    email "mail"
}}
policy {{
    mode "delete"
    max-removes 5
}}
"#,
        w.ltc.url
    );
    std::fs::write(w.path("contractors.kdl"), contractors).expect("config");
    w.config(
        "roster.kdl",
        "",
        r#"mode "delete"
    max-removes 5
    max-source-shrink-percent 50"#,
    );

    w.sync();
    w.ok(&["-c", "contractors.kdl", "sync", "--auto-approve"], 0);
    assert_eq!(w.ltc.members(), ["alice", "bob", "carol", "zed"]);

    // Each config, in delete mode, leaves the other's accounts alone.
    let plan = w.plan_json(&[]);
    assert_eq!(actions(&plan), Vec::<String>::new(), "employees leave zed");
    let plan: Value =
        serde_json::from_str(&w.ok(&["-c", "contractors.kdl", "plan", "--format", "json"], 0))
            .expect("plan");
    assert_eq!(
        actions(&plan),
        Vec::<String>::new(),
        "contractors leave the employees"
    );

    // A contractor leaving is deleted by the contractors' config only.
    std::fs::write(
        w.path("contractors.csv"),
        "id,login,cn,mail\nc-2,yan,Yan Contractor,yan@example.com\n",
    )
    .expect("csv");
    let plan: Value =
        serde_json::from_str(&w.ok(&["-c", "contractors.kdl", "plan", "--format", "json"], 0))
            .expect("plan");
    let mut planned = actions(&plan);
    planned.sort();
    assert_eq!(planned, ["add yan planned", "delete zed planned"]);
    w.ok(&["-c", "contractors.kdl", "sync", "--auto-approve"], 0);
    assert_eq!(w.ltc.members(), ["alice", "bob", "carol", "yan"]);
}

#[test]
fn a_killed_apply_is_resumed_without_a_duplicate_user() {
    let w = World::new();
    w.ok(&["plan", "--out", "plan.json"], 0);
    // bob's create reaches LoginTC, but its answer is held back until roster is dead.
    w.ltc.stall_create("bob", Duration::from_secs(3));
    let mut apply = w
        .command(&["apply", "plan.json", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roster");
    wait_until("bob created", || w.ltc.user("bob").is_some());
    apply.kill().expect("kill");
    let _ = apply.wait();
    assert!(
        !w.ltc.members().contains(&"bob".to_string()),
        "killed before joining"
    );

    // The dead run's lock is released by hand, then the same plan is applied again.
    let out = w.roster(&["apply", "plan.json", "--auto-approve"]);
    let stderr = text(&out.stderr);
    if let Some(lock_id) = stderr
        .split("roster unlock ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
    {
        w.ok(&["unlock", lock_id], 0);
    }
    wait_until("the double answers again", || {
        w.roster(&["validate"]).status.success()
    });
    w.ok(&["apply", "plan.json", "--auto-approve"], 0);
    assert_eq!(
        w.ltc.org_usernames(),
        ["alice", "bob", "carol"],
        "no duplicate"
    );
    assert_eq!(w.ltc.members(), ["alice", "bob", "carol"]);
}

#[test]
fn a_wrong_key_names_the_host_and_never_the_key() {
    let mut w = World::new();
    w.key = "w".repeat(64);
    let out = w.roster(&["plan"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the LoginTC API refused the key (HTTP 401)"),
        "{stderr}"
    );
    let host = w.ltc.url.trim_start_matches("http://");
    assert!(stderr.contains(host), "{stderr}");
    assert!(!stderr.contains(&w.key), "{stderr}");
    assert!(w.ltc.members().is_empty());
}

#[test]
fn an_unknown_domain_fails_before_anything_is_planned() {
    let w = World::new();
    let config = std::fs::read_to_string(w.path("roster.kdl"))
        .expect("config")
        .replace(DOMAIN, &"0".repeat(40));
    std::fs::write(w.path("roster.kdl"), config).expect("config");
    let out = w.roster(&["plan", "--out", "plan.json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains(&"0".repeat(40)), "{stderr}");
    assert!(!w.path("plan.json").exists(), "nothing planned");
}

#[test]
fn a_username_over_128_characters_is_a_reject_at_plan_time() {
    let w = World::new();
    let long = "x".repeat(129);
    w.slapd
        .add(&person(&long, "Long Name", Some("long@example.com"), &[]));
    w.ok(&["plan", "--out", "plan.json"], 0);
    let shown = w.ok(&["show", "plan.json", "--format", "json"], 0);
    let shown_json: Value = serde_json::from_str(&shown).expect("plan");
    let plan = shown_json.get("plan").unwrap_or(&shown_json);
    assert_eq!(plan["summary"]["rejected"], 1, "{shown}");
    assert_eq!(plan["summary"]["add"], 3, "{shown}");
    assert!(shown.contains("username is 129 characters"), "{shown}");
}

#[test]
fn validate_refuses_fields_logintc_cannot_hold() {
    let w = World::new();
    let config = std::fs::read_to_string(w.path("roster.kdl"))
        .expect("config")
        .replace(
            "email \"mail\"",
            "email \"mail\"\n    phone \"telephoneNumber\"\n    alias \"mail\" to=\"nickName\"",
        );
    std::fs::write(w.path("roster.kdl"), &config).expect("config");
    let out = w.roster(&["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("holds no phone numbers"), "{stderr}");
    assert!(stderr.contains("holds no alias fields"), "{stderr}");
    // Pointing at the lines.
    assert!(
        stderr.contains("phone mapping") && stderr.contains("alias mapping"),
        "{stderr}"
    );

    std::fs::write(w.path("roster.kdl"), config.replace(DOMAIN, "not-a-domain")).expect("config");
    let out = w.roster(&["validate"]);
    assert!(
        text(&out.stderr).contains("not a LoginTC domain id"),
        "{}",
        text(&out.stderr)
    );

    // No email mapping and no default-email; AD accounts synced as inactive.
    w.config("roster.kdl", "", "");
    let config = std::fs::read_to_string(w.path("roster.kdl"))
        .expect("config")
        .replace("    email \"mail\"\n", "")
        .replace(
            "filter \"(objectClass=inetOrgPerson)\"",
            "filter \"(objectClass=inetOrgPerson)\"\n    active-directory #true\n    disabled \"inactive\"",
        );
    std::fs::write(w.path("roster.kdl"), config).expect("config");
    let out = w.roster(&["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("requires an email"), "{stderr}");
    assert!(stderr.contains("no active flag"), "{stderr}");

    // No documented way to email the activation code.
    w.config("roster.kdl", r#"token-mode "with-email""#, "");
    let out = w.roster(&["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("documents no way to email a token's activation code"),
        "{stderr}"
    );
    assert!(
        stderr.contains("use token-mode \"without-email\""),
        "{stderr}"
    );
    assert!(stderr.contains("token-mode \"with-email\""), "{stderr}");

    // No groups to sync.
    w.config("roster.kdl", "", r#"group-all "Everyone""#);
    let out = w.roster(&["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has no groups roster can sync, so `group-all` cannot be kept")
            && stderr.contains("group-all on a target without groups"),
        "{stderr}"
    );
    assert!(w.ltc.members().is_empty(), "nothing was sent");
}
