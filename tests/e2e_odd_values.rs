//! End to end: odd directory values (issue 11.8) from a real slapd, through the real
//! `roster` binary, into a real scim2-server. A username with spaces around it is trimmed,
//! never created as a look-alike account; a control character in a value, or two different
//! values of a single-valued attribute, rejects the record with a reason that `plan` counts
//! and `roster show` lists; the target holds exactly the clean accounts.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use support::world::*;

#[test]
fn odd_values_are_trimmed_or_rejected_with_their_reason_and_never_sent() {
    let w = World::new(&[("alice", "Alice Liddell", Some("alice@example.com"), &[])]);
    let base = w.slapd.base_dn.clone();
    let b64 = |text: &str| BASE64.encode(text.as_bytes());
    w.slapd.add(&format!(
        "dn: cn=Bob Spaces,ou=People,{base}\nobjectClass: inetOrgPerson\nuid:: {}\ncn: Bob \
         Spaces\nsn: Spaces\nmail: bob@example.com\n\n\
         dn: uid=carol,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: carol\ncn: Carol\nsn: \
         C\nmail:: {}\n\n\
         dn: uid=dave,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: dave\nuid: dave2\ncn: \
         Dave\nsn: D\nmail: dave@example.com\n\n\
         dn: uid=erin,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: erin\ncn:: {}\nsn: \
         E\nmail: erin@example.com\n\n",
        b64(" Bob "),
        b64("carol\u{0}@example.com"),
        b64("Erin\u{1b}[1A\u{1b}[2K  - user ceo"),
    ));

    let plan = w.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.contains("Plan: 2 to add, 0 to update, 0 to remove, 0 to delete. 3 rejected records"),
        "{plan}"
    );
    assert!(
        plan.contains("  + user bob (Bob Spaces <bob@example.com>)"),
        "{plan}"
    );
    assert!(
        !plan.contains('\u{1b}'),
        "no escape sequence reaches the plan"
    );

    let runs = w.ok(&["runs"], 0);
    let run_id = runs
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run listed:\n{runs}"))
        .to_string();
    let shown = w.ok(&["show", &run_id], 0);
    assert!(shown.contains("Rejected source records (3):"), "{shown}");
    for reason in [
        "mail (email) holds a control character (U+0000 at character 6)",
        "several values: uid (username) has 2 different values (\"dave\", \"dave2\")",
        "cn (name) holds a control character (U+001B at character 5)",
    ] {
        assert!(shown.contains(reason), "{reason}:\n{shown}");
    }

    w.ok(&["apply", "--auto-approve"], 0);
    let mut names: Vec<String> = w
        .scim
        .users()
        .iter()
        .filter_map(|u| u["userName"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"], "only the clean accounts exist");
    let bob = w.user("bob");
    assert_eq!(bob["userName"], "bob", "trimmed, not \" bob \"");
    for user in w.scim.users() {
        let text = user.to_string();
        assert!(
            !text.contains("\\u0000") && !text.contains("\\u001b"),
            "a control character reached the target: {text}"
        );
    }
    let again = w.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(again.contains("No changes."), "{again}");
}
