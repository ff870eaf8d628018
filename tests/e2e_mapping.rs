//! End to end: the mapping's expressions (issue 14) from a real slapd, through the real
//! `roster` binary, into a real scim2-server. A name computed by a template, a static
//! attribute, an invalid email replaced by `default-email` with the plan saying so, and a
//! record whose template needs a missing attribute rejected with the reason.

mod support;

use support::world::*;

#[test]
fn template_name_static_value_and_defaulted_email_reach_the_target() {
    let w = World::new(&[]);
    let base = w.slapd.base_dn.clone();
    w.slapd.add(&format!(
        "dn: uid=ada,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: ada\ncn: A L\n\
         givenName: Ada\nsn: Lovelace\nmail: ada@example.com\n\n\
         dn: uid=bob,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: bob\ncn: B\n\
         givenName: Bob\nsn: Builder\nmail: not-an-address\n\n\
         dn: uid=nogiven,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: nogiven\ncn: N\n\
         sn: Case\nmail: nogiven@example.com\n\n"
    ));
    w.write(&Cfg {
        policy: r#"default-email "{username}@fallback.example.com""#,
        user: r#"attribute "Staff" to="title" value="Staff""#,
        ..Cfg::default()
    });
    let config = std::fs::read_to_string(w.path("roster.kdl")).expect("config");
    let config = config
        .replace(
            "    name \"cn\"\n",
            "    name \"{givenName} {sn | upper}\"\n",
        )
        .replace(
            "    email \"mail\"\n",
            "    email \"mail\" on-invalid=\"default\"\n",
        );
    std::fs::write(w.path("roster.kdl"), config).expect("write config");
    w.ok(&["validate"], 0);

    let plan = w.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(plan.contains("2 to add"), "{plan}");
    assert!(plan.contains("1 rejected record"), "{plan}");
    assert!(
        plan.contains("email: 1 invalid value was replaced by default-email"),
        "the plan says an email was defaulted:\n{plan}"
    );
    assert!(plan.contains("invalid email \"not-an-address\""), "{plan}");

    let runs = w.ok(&["runs"], 0);
    let run_id = runs
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run listed:\n{runs}"))
        .to_string();
    let shown = w.ok(&["show", &run_id], 0);
    assert!(
        shown.contains("name: attribute `givenName` is missing"),
        "{shown}"
    );

    w.ok(&["apply", "--auto-approve"], 0);
    let mut names: Vec<String> = w
        .scim
        .users()
        .iter()
        .filter_map(|u| u["userName"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["ada", "bob"],
        "the record without givenName is not created"
    );
    let ada = w.user("ada");
    assert_eq!(ada["displayName"], "Ada LOVELACE", "{ada}");
    assert_eq!(ada["title"], "Staff", "{ada}");
    assert_eq!(emails(&ada)[0].0, "ada@example.com", "{ada}");
    let bob = w.user("bob");
    assert_eq!(bob["displayName"], "Bob BUILDER", "{bob}");
    assert_eq!(emails(&bob)[0].0, "bob@fallback.example.com", "{bob}");
    assert_eq!(bob["title"], "Staff", "{bob}");
    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
}
