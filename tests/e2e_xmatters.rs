//! End to end with the xMatters target: the real `roster` binary reads a real slapd and
//! keeps the people of a local xMatters double (tests/support/xmatters.rs) in line. Every
//! test asserts what the double holds afterwards.

mod support;

use std::process::Output;

use support::slapd::{Slapd, person, person_dn};
use support::xmatters::{CLIENT_ID, USERNAME, XMattersDouble};
use support::{expect_code, roster_in, text};

const LDAP_PASSWORD_VAR: &str = "E2E_LDAP_PASSWORD";
const XM_PASSWORD_VAR: &str = "E2E_XM_PASSWORD";
/// The licence types the tests' mapping gives, unless a test maps its own.
const ROLES: &str = r#"role "FULL_USER" to="licenseType" when="uid" equals="alice"
    role "STAKEHOLDER_USER" to="licenseType" default=#true"#;

struct World {
    slapd: Slapd,
    xm: XMattersDouble,
    dir: tempfile::TempDir,
    xm_password: String,
}

impl World {
    fn new() -> World {
        let slapd = Slapd::start();
        slapd.add(&person(
            "alice",
            "Alice Liddell",
            Some("alice@example.com"),
            &["+1 555 0100"],
        ));
        slapd.add(&person("bob", "Bob Builder", Some("bob@example.com"), &[]));
        slapd.add(&person(
            "carol",
            "Carol Danvers",
            Some("carol@example.com"),
            &["+1 555 0102"],
        ));
        let xm = XMattersDouble::start();
        World {
            xm_password: xm.password.clone(),
            slapd,
            xm,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// roster.kdl with `target` nodes added to the xMatters block, `user` to the user block.
    fn config(&self, target: &str, user: &str, policy: &str) {
        let config = format!(
            r#"
state "state.db"
source "ldap" {{
    url "{url}"
    bind-dn "{admin}"
    bind-password env="{LDAP_PASSWORD_VAR}"
    base-dn "ou=People,{base}"
    filter "(objectClass=inetOrgPerson)"
}}
target "xmatters" {{
    url "{xm}"
    username "{USERNAME}"
    password env="{XM_PASSWORD_VAR}"
    page-size 2
    {target}
}}
user {{
    key "uid"
    username "uid"
    name "cn"
    email "mail"
    phone "telephoneNumber"
    {user}
}}
policy {{
    max-source-shrink-percent 50
    {policy}
}}
"#,
            url = self.slapd.url,
            admin = self.slapd.admin_dn,
            base = self.slapd.base_dn,
            xm = self.xm.url,
            user = if user.is_empty() { ROLES } else { user },
        );
        std::fs::write(self.dir.path().join("roster.kdl"), config).expect("config");
    }

    fn roster(&self, args: &[&str]) -> Output {
        roster_in(
            self.dir.path(),
            args,
            &[
                (LDAP_PASSWORD_VAR, self.slapd.admin_password.as_str()),
                (XM_PASSWORD_VAR, self.xm_password.as_str()),
            ],
        )
    }

    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        expect_code(&out, args, code);
        text(&out.stdout)
    }
}

#[test]
fn people_are_created_updated_removed_and_deleted() {
    let world = World::new();
    let by_hand = world.xm.add_person("zed", "Zed", "Hand");
    world.config("", "", r#"mode "remove"; max-removes 1"#);
    world.ok(&["validate"], 0);
    world.ok(&["apply", "--auto-approve"], 0);

    let alice = world.xm.person("alice").expect("alice");
    assert_eq!(
        (alice.first_name.as_str(), alice.last_name.as_str()),
        ("Alice", "Liddell")
    );
    assert_eq!(alice.external_key.as_deref(), Some("alice"));
    assert!(alice.externally_owned);
    assert_eq!(alice.license_type, "FULL_USER");
    assert_eq!(alice.roles, ["Standard User"]);
    assert_eq!(alice.status, "ACTIVE");
    let devices = world.xm.devices("alice");
    assert_eq!(
        devices["Work Email"].email.as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(devices["Work Phone"].phone.as_deref(), Some("+15550100"));
    assert_eq!(
        world.xm.person("bob").expect("bob").license_type,
        "STAKEHOLDER_USER"
    );
    assert_eq!(
        world.xm.devices("carol").len(),
        2,
        "an email and a phone device"
    );

    // Nothing changed: an empty plan, and no write.
    let writes = world.xm.writes().len();
    world.ok(&["plan", "--detailed-exitcode"], 0);
    world.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        world.xm.writes().len(),
        writes,
        "a second run writes nothing"
    );

    world.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Alice Kingsleigh\n-\nadd: telephoneNumber\ntelephoneNumber: +1 555 0199\n-\nreplace: mail\nmail: alice@wonderland.example\n",
        person_dn("alice")
    ));
    world.slapd.delete(&person_dn("bob"));
    let plan = world.ok(&["plan"], 0);
    assert!(
        plan.contains("user bob  (status INACTIVE, kept in xMatters)"),
        "{plan}"
    );
    world.ok(&["apply", "--auto-approve"], 0);
    let alice = world.xm.person("alice").expect("alice");
    assert_eq!(alice.last_name, "Kingsleigh");
    let devices = world.xm.devices("alice");
    assert_eq!(
        devices["Work Email"].email.as_deref(),
        Some("alice@wonderland.example")
    );
    assert_eq!(
        devices["Work Phone"].phone.as_deref(),
        Some("+15550100"),
        "phones are additive"
    );
    assert_eq!(devices["Mobile Phone"].phone.as_deref(), Some("+15550199"));
    assert_eq!(world.xm.person("bob").expect("bob kept").status, "INACTIVE");
    let zed = world
        .xm
        .person("zed")
        .expect("the person made by hand is left alone");
    assert_eq!(
        (zed.id.as_str(), zed.status.as_str()),
        (by_hand.as_str(), "ACTIVE")
    );
    world.ok(&["plan", "--detailed-exitcode"], 0);

    world.config("", "", r#"mode "delete"; max-removes 1"#);
    world.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(world.xm.target_names(), ["alice", "carol", "zed"]);
    world.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn oauth_tokens_are_granted_refreshed_and_429_is_waited_out() {
    let world = World::new();
    world.config(&format!(r#"client-id "{CLIENT_ID}""#), "", "");
    // Tokens that run out within the run: two 429s (a second each) outlast the first.
    world.xm.expire_tokens_after(1);
    world.xm.throttle(2);
    let out = world.roster(&["apply", "--auto-approve"]);
    expect_code(&out, &["apply"], 0);
    assert_eq!(world.xm.target_names(), ["alice", "bob", "carol"]);
    let grants = world.xm.grants();
    assert_eq!(
        grants.first().map(String::as_str),
        Some("password"),
        "{grants:?}"
    );
    assert!(grants.iter().any(|g| g == "refresh_token"), "{grants:?}");
    let basic = world
        .xm
        .requests()
        .iter()
        .filter(|r| {
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic"))
        })
        .count();
    assert_eq!(basic, 0, "with client-id every call carries the token");
    world.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn wrong_credentials_are_refused_before_anything_is_written() {
    let mut world = World::new();
    world.xm_password = "wrong-password-123".into();
    world.config("", "", "");
    let out = world.roster(&["apply", "--auto-approve"]);
    expect_code(&out, &["apply"], 1);
    let err = text(&out.stderr);
    assert!(err.contains("xMatters refused the credentials"), "{err}");
    assert!(!err.contains("wrong-password-123"), "{err}");

    world.config(&format!(r#"client-id "{CLIENT_ID}""#), "", "");
    let out = world.roster(&["apply", "--auto-approve"]);
    expect_code(&out, &["apply"], 1);
    let err = text(&out.stderr);
    assert!(
        err.contains("the token endpoint refused the grant"),
        "{err}"
    );
    assert!(world.xm.writes().is_empty());
    assert!(world.xm.target_names().is_empty());
}

#[test]
fn a_licence_type_xmatters_rejects_fails_that_person_with_its_message() {
    let world = World::new();
    world.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: employeeType\nemployeeType: Full User\n",
        person_dn("bob")
    ));
    world.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: employeeType\nemployeeType: STAKEHOLDER_USER\n",
        person_dn("carol")
    ));
    // A licence type from the directory, as the seed's sync reads one.
    let config = |user: &str| world.config("", user, "");
    config(r#"attribute "employeeType" to="licenseType""#);
    let out = world.roster(&["apply", "--auto-approve"]);
    expect_code(&out, &["apply"], 1);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("Invalid licenseType: Full User"), "{all}");
    assert!(world.xm.person("bob").is_none());
    assert_eq!(
        world.xm.person("carol").expect("carol").license_type,
        "STAKEHOLDER_USER"
    );

    // A constant that is no licence type is refused by validate, pointing at it.
    let dir = tempfile::tempdir().expect("dir");
    let text_config = std::fs::read_to_string(world.dir.path().join("roster.kdl"))
        .expect("config")
        .replace(
            r#"attribute "employeeType" to="licenseType""#,
            r#"role "Full User" to="licenseType" default=#true
    attribute "title" to="jobTitle"
    attribute "givenName" to="firstName""#,
        );
    std::fs::write(dir.path().join("roster.kdl"), text_config).expect("write");
    let out = roster_in(dir.path(), &["validate"], &[]);
    expect_code(&out, &["validate"], 1);
    let err = text(&out.stderr);
    assert!(
        err.contains("xMatters has no licence type \"Full User\""),
        "{err}"
    );
    assert!(err.contains("write FULL_USER"), "{err}");
    assert!(
        err.contains("xMatters people have no field `jobTitle`"),
        "{err}"
    );
}
