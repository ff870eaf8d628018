//! End to end with the Luma target: the real `roster` binary reads a real slapd and keeps
//! the contacts of a local double of Luma's bulk upload (tests/support/luma.rs) in line.
//! Every test asserts what the double holds afterwards, and how often it was uploaded to.

mod support;

use std::process::Output;

use support::luma::{COLUMNS, LumaDouble, SHEET, SUB_DOMAIN, USERNAME, write_template};
use support::slapd::{Slapd, person, person_dn};
use support::{expect_code, roster_in, text};

const LDAP_PASSWORD_VAR: &str = "E2E_LDAP_PASSWORD";
const LUMA_PASSWORD_VAR: &str = "E2E_LUMA_PASSWORD";
const TEMPLATE: &str = "Template_for_Bulk_Upload.xlsx";

struct World {
    slapd: Slapd,
    luma: LumaDouble,
    dir: tempfile::TempDir,
    password: String,
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
        let luma = LumaDouble::start();
        let dir = tempfile::tempdir().expect("temp dir");
        write_template(&dir.path().join(TEMPLATE), SHEET, COLUMNS);
        World {
            password: luma.password.clone(),
            slapd,
            luma,
            dir,
        }
    }

    /// roster.kdl; `user` goes into the user block.
    fn config(&self, user: &str) {
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
target "luma" {{
    url "{luma}"
    username "{USERNAME}"
    password env="{LUMA_PASSWORD_VAR}"
    sub-domain "{SUB_DOMAIN}"
    template "{TEMPLATE}"
    sheet "{SHEET}"
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
}}
"#,
            url = self.slapd.url,
            admin = self.slapd.admin_dn,
            base = self.slapd.base_dn,
            luma = self.luma.url,
        );
        std::fs::write(self.dir.path().join("roster.kdl"), config).expect("config");
    }

    fn roster(&self, args: &[&str]) -> Output {
        roster_in(
            self.dir.path(),
            args,
            &[
                (LDAP_PASSWORD_VAR, self.slapd.admin_password.as_str()),
                (LUMA_PASSWORD_VAR, self.password.as_str()),
            ],
        )
    }

    fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        expect_code(&out, args, code);
        text(&out.stdout)
    }

    fn cell(&self, username: &str, column: &str) -> Option<String> {
        self.luma
            .contact(username)
            .and_then(|c| c.get(column).cloned())
    }
}

const DEPARTMENT: &str = r#"attribute "sn" to="Department""#;

#[test]
fn contacts_are_uploaded_once_per_change_and_a_second_plan_is_empty() {
    let world = World::new();
    world.config(DEPARTMENT);
    world.ok(&["validate"], 0);
    world.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(world.luma.uploads(), 1);
    assert_eq!(world.luma.contacts(), vec!["alice", "bob"]);
    assert_eq!(
        world.cell("alice", "Name").as_deref(),
        Some("Alice Liddell")
    );
    assert_eq!(
        world.cell("alice", "Email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(world.cell("alice", "Phone").as_deref(), Some("+1 555 0100"));
    assert_eq!(world.cell("bob", "Department").as_deref(), Some("Builder"));

    // Nothing changed: the snapshot is what was uploaded, and nothing is uploaded again.
    world.ok(&["plan", "--detailed-exitcode"], 0);
    world.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(world.luma.uploads(), 1, "no changes, no upload");

    // An update uploads the workbook again, with every contact.
    world.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: alice@wonderland.example\n",
        person_dn("alice")
    ));
    world.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(world.luma.uploads(), 2);
    assert_eq!(
        world.cell("alice", "Email").as_deref(),
        Some("alice@wonderland.example")
    );
    assert_eq!(world.luma.contacts(), vec!["alice", "bob"]);
    world.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_refused_row_fails_its_action_and_is_tried_again_next_time() {
    let world = World::new();
    world.config("");
    world.luma.refuse(
        "bob",
        "Contact bob is a duplicate of another patient contact",
    );
    world.luma.warn("alice", "Phone number was reformatted");
    let out = world.roster(&["apply", "--auto-approve"]);
    expect_code(&out, &["apply", "--auto-approve"], 1);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("1 applied, 1 failed"), "{all}");
    assert!(
        all.contains("duplicate of another patient contact"),
        "{all}"
    );
    assert!(all.contains("Phone number was reformatted"), "{all}");
    assert_eq!(world.luma.contacts(), vec!["alice"]);

    // Bob's add was not kept as done: the next plan adds him again, and it goes in.
    world.luma.accept("bob");
    let plan = world.ok(&["plan"], 0);
    assert!(plan.contains("bob"), "{plan}");
    assert!(!plan.contains("alice"), "{plan}");
    world.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(world.luma.contacts(), vec!["alice", "bob"]);
    assert_eq!(world.luma.uploads(), 2);
}

#[test]
fn wrong_credentials_fail_the_plan_before_anything_is_uploaded() {
    let mut world = World::new();
    world.config("");
    world.password = "not-the-password-3c9".into();
    let out = world.roster(&["apply", "--auto-approve"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.contains("Luma refused the login"), "{err}");
    assert!(!err.contains("not-the-password-3c9"), "{err}");
    assert_eq!(world.luma.uploads(), 0);
    assert!(world.luma.contacts().is_empty());
}

#[test]
fn validate_refuses_a_mapping_the_template_has_no_column_for() {
    let world = World::new();
    world.config(r#"attribute "title" to="Job Title""#);
    let out = world.roster(&["validate"]);
    expect_code(&out, &["validate"], 1);
    let err = text(&out.stderr);
    assert!(err.contains("has no column `Job Title`"), "{err}");
    assert!(
        err.contains("Username, Name, Email, Phone, Department"),
        "{err}"
    );

    // A template that is not there, or without the sheet, is a validate error too.
    std::fs::remove_file(world.dir.path().join(TEMPLATE)).expect("remove");
    world.config("");
    let err = text(&world.roster(&["validate"]).stderr);
    assert!(err.contains("cannot be read as a workbook"), "{err}");
    write_template(&world.dir.path().join(TEMPLATE), "Sheet1", COLUMNS);
    let err = text(&world.roster(&["validate"]).stderr);
    assert!(err.contains("has no sheet \"Contacts\""), "{err}");

    // A mode that would take contacts out is refused: the upload cannot.
    write_template(&world.dir.path().join(TEMPLATE), SHEET, COLUMNS);
    world.config("");
    let path = world.dir.path().join("roster.kdl");
    let config = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        config.replace(
            "max-source-shrink-percent 50",
            "max-source-shrink-percent 50\n    mode \"remove\"",
        ),
    )
    .expect("config");
    let out = world.roster(&["validate"]);
    expect_code(&out, &["validate"], 1);
    let err = text(&out.stderr);
    assert!(err.contains("cannot deactivate or delete"), "{err}");
    assert_eq!(world.luma.logins(), 0);
}

#[test]
fn an_upload_luma_refuses_whole_fails_every_action_and_keeps_nothing() {
    let world = World::new();
    // A template with a column the tenant's does not have: Luma refuses the whole workbook.
    let mut columns = COLUMNS.to_vec();
    columns.push("Badge");
    write_template(&world.dir.path().join(TEMPLATE), SHEET, &columns);
    world.config("");
    let out = world.roster(&["apply", "--auto-approve"]);
    expect_code(&out, &["apply", "--auto-approve"], 1);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("0 applied, 2 failed"), "{all}");
    assert!(
        all.contains("the header row is not the template's"),
        "{all}"
    );
    assert!(world.luma.contacts().is_empty());

    // Nothing was kept as uploaded: with the right template, both are added.
    write_template(&world.dir.path().join(TEMPLATE), SHEET, COLUMNS);
    let plan = world.ok(&["plan"], 0);
    assert!(plan.contains("alice") && plan.contains("bob"), "{plan}");
    world.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(world.luma.contacts(), vec!["alice", "bob"]);
}
