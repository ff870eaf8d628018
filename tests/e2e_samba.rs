//! End to end against a real Active Directory: a Samba 4 domain controller provisioned for
//! the test, read over LDAPS by the real `roster` binary into a real scim2-server.
//!
//! Samba's LDAP ports are fixed (389, 636), so everything that needs the DC is one test
//! function with steps: a wrong password (AD's `data 52e` sub-code), a first sync keyed by
//! `objectGUID`, then incremental reads tracked by `uSNChanged`: a modified user is the only
//! update, a disabled account and a deleted one (read from the DC's tombstones) are taken
//! out of service. Skipped, loudly, only when Samba is not installed (`make test` installs it).

mod support;

use serde_json::Value;
use support::samba::{self, Samba};
use support::scim::ScimServer;
use support::world::{actions, active};
use support::{expect_code, roster_in, text};

const PASSWORD_VAR: &str = "E2E_AD_PASSWORD";
const TOKEN_VAR: &str = "E2E_SCIM_TOKEN";

struct Run<'a> {
    dir: tempfile::TempDir,
    scim: &'a ScimServer,
    password: String,
}

impl Run<'_> {
    fn roster(&self, args: &[&str]) -> std::process::Output {
        roster_in(
            self.dir.path(),
            args,
            &[
                (PASSWORD_VAR, self.password.as_str()),
                (TOKEN_VAR, self.scim.token.as_str()),
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
}

fn config(ca: &std::path::Path, scim: &ScimServer) -> String {
    format!(
        r#"
state "state.db"
source "ldap" {{
    url "{url}"
    ca-file "{ca}"
    active-directory #true
    bind-dn "{admin}"
    bind-password env="{PASSWORD_VAR}"
    base-dn "{users}"
    filter "(&(objectCategory=person)(objectClass=user)(mail=*))"
    // Pages of one: every search, the tombstones' included, takes several pages.
    page-size 1
    timeout 10
}}
target "scim" {{
    url "{scim_url}"
    token env="{TOKEN_VAR}"
}}
user {{
    key "objectGUID"
    username "sAMAccountName" normalize="lowercase"
    name "cn"
    email "mail"
}}
policy {{
    mode "remove"
    max-removes 5
    read "incremental"
}}
"#,
        url = samba::LDAPS_URL,
        ca = ca.display(),
        admin = samba::ADMIN_DN,
        users = samba::USERS_DN,
        scim_url = scim.url,
    )
}

fn note(plan: &Value, prefix: &str) -> String {
    plan["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no note {prefix:?} in {}", plan["notes"]))
        .to_string()
}

fn mail(user: &Value) -> &str {
    user["emails"][0]["value"].as_str().unwrap_or_default()
}

#[test]
fn a_real_samba_dc_over_ldaps_first_sync_then_usn_tracked_changes_and_deletes() {
    if !samba::installed() {
        eprintln!(
            "\n\n*** SKIPPED: Samba is not installed (apt-get install samba samba-vfs-modules); \
             `make test` installs it ***\n"
        );
        return;
    }
    let started = std::time::Instant::now();
    let step = |what: &str| eprintln!("{:>6.1?} {what}", started.elapsed());
    let dc = Samba::start();
    step("DC provisioned and started");
    for (name, given, surname) in [
        ("alice", "Alice", "Smith"),
        ("bob", "Bob", "Jones"),
        ("carol", "Carol", "White"),
    ] {
        dc.add_user(name, given, surname);
    }
    step("users added");
    let scim = ScimServer::start();
    let mut run = Run {
        dir: tempfile::tempdir().expect("work dir"),
        scim: &scim,
        password: "not-the-password".to_string(),
    };
    std::fs::write(run.dir.path().join("roster.kdl"), config(&dc.ca, &scim)).expect("config");

    // A wrong password: AD's sub-code, explained; nothing reaches the target.
    let out = run.roster(&["plan"]);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("52e"), "{stderr}");
    assert!(stderr.contains("the password is wrong"), "{stderr}");
    assert!(
        !stderr.contains("not-the-password"),
        "the password never shows"
    );
    assert!(scim.users().is_empty());

    step("wrong password");
    // The first sync: a complete read, keyed by objectGUID.
    run.password = samba::ADMIN_PASSWORD.to_string();
    let first = run.plan();
    assert_eq!(
        actions(&first),
        [
            "add user alice planned",
            "add user bob planned",
            "add user carol planned"
        ]
    );
    run.ok(&["apply", "--auto-approve"]);
    assert_eq!(scim.users().len(), 3);
    let alice = scim.user_by_username("alice").expect("alice in the target");
    assert_eq!(mail(&alice), "alice@samba.test");
    assert_eq!(alice["displayName"], "Alice Smith");
    assert!(active(&alice));
    assert!(run.ok(&["plan"]).contains("No changes."));

    step("first sync");
    // One user modified: the incremental read (uSNChanged past the cookie) has only her.
    dc.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: alice@corp.samba.test\n",
        dc.dn("alice")
    ));
    let plan = run.plan();
    assert_eq!(actions(&plan), ["update user alice planned"]);
    let read = note(&plan, "incremental read:");
    assert!(read.contains("1 changed record and 0 deletes"), "{read}");
    run.ok(&["apply", "--auto-approve"]);
    assert_eq!(
        mail(&scim.user_by_username("alice").expect("alice")),
        "alice@corp.samba.test"
    );

    step("modified user");
    // bob disabled (userAccountControl 0x2), carol deleted: both are taken out of service,
    // carol from her tombstone in CN=Deleted Objects.
    let carol_dn = dc.dn("carol");
    dc.tool(&["user", "disable", "bob"]);
    dc.tool(&["user", "delete", "carol"]);
    let plan = run.plan();
    let read = note(&plan, "incremental read:");
    assert!(read.contains("2 deletes"), "{read}");
    let planned = actions(&plan);
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert!(
        planned.iter().any(|a| a.contains(" bob "))
            && planned.iter().any(|a| a.contains(" carol ")),
        "{planned:?}"
    );
    assert!(
        planned
            .iter()
            .all(|a| !a.starts_with("add ") && !a.starts_with("update ")),
        "{planned:?}"
    );
    run.ok(&["apply", "--auto-approve"]);
    let gone = |name: &str| scim.user_by_username(name).is_none_or(|u| !active(&u));
    assert!(gone("bob"), "disabled: out of service");
    assert!(gone("carol"), "deleted ({carol_dn}): out of service");
    assert!(active(&scim.user_by_username("alice").expect("alice")));
    assert!(run.ok(&["plan"]).contains("No changes."));

    step("disabled and deleted users");
    // More tombstones than a page: the search of CN=Deleted Objects is paged like the main
    // one, and every page is read.
    dc.add_user("dave", "Dave", "Brown");
    dc.add_user("erin", "Erin", "Green");
    run.ok(&["apply", "--auto-approve"]);
    assert!(active(&scim.user_by_username("dave").expect("dave")));
    assert!(active(&scim.user_by_username("erin").expect("erin")));
    dc.tool(&["user", "delete", "dave"]);
    dc.tool(&["user", "delete", "erin"]);
    let plan = run.plan();
    let read = note(&plan, "incremental read:");
    assert!(read.contains("2 deletes"), "{read}");
    assert_eq!(
        actions(&plan),
        ["remove user dave planned", "remove user erin planned"]
    );
    run.ok(&["apply", "--auto-approve"]);
    assert!(gone("dave") && gone("erin"), "both tombstones were read");
    assert!(active(&scim.user_by_username("alice").expect("alice")));

    step("tombstones over two pages");
    // A user deleted and created again under the same name (the same DN, a new objectGUID)
    // between two reads: the tombstone, read after the changes, is of the old object. The
    // account follows the new one (re-keyed by its username) and nothing is removed.
    dc.add_user("frank", "Frank", "Black");
    run.ok(&["apply", "--auto-approve"]);
    let before = scim.user_by_username("frank").expect("frank");
    dc.tool(&["user", "delete", "frank"]);
    dc.add_user("frank", "Frank", "Black");
    let plan = run.plan();
    let read = note(&plan, "incremental read:");
    assert!(read.contains(" and 0 deletes"), "{read}");
    assert_eq!(actions(&plan), ["update user frank planned"]);
    run.ok(&["apply", "--auto-approve"]);
    let after = scim.user_by_username("frank").expect("frank");
    assert!(active(&after), "frank stays in service");
    assert_ne!(
        after["externalId"], before["externalId"],
        "keyed by the new object's objectGUID"
    );
    assert!(run.ok(&["plan"]).contains("No changes."));

    step("deleted and created again");
    // A cookie whose USN counts for another database of the DC (another invocationId) is
    // never read on: USNs of different invocations are not comparable.
    let db = rusqlite::Connection::open(run.dir.path().join("state.db")).expect("state store");
    let cookie: String = db
        .query_row(
            "SELECT cookie FROM source_reads WHERE run_id = (SELECT max(run_id) FROM source_reads)",
            [],
            |row| row.get(0),
        )
        .expect("the last read's cookie");
    let mut parts: Vec<&str> = cookie.splitn(4, ':').collect();
    assert_eq!(parts[0], "ldap-ad-usn", "{cookie}");
    parts[2] = "00000000000000000000000000000000";
    db.execute(
        "UPDATE source_reads SET cookie = ?1 WHERE run_id = (SELECT max(run_id) FROM source_reads)",
        [parts.join(":")],
    )
    .expect("rewrite the cookie");
    let out = run.roster(&["plan"]);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("run a complete read"), "{stderr}");
    step("done");
}
