//! `sync --allow-<kind> N` releases what the plan it makes holds, as `apply` does for a saved
//! plan: end to end against real slapd and scim2-server, asserting what the target holds.

mod support;

use support::world::*;

fn usernames(w: &World) -> Vec<String> {
    let mut names: Vec<String> = w
        .scim
        .users()
        .iter()
        .map(|u| u["userName"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn sync_releases_held_actions_of_a_kind_only_when_n_covers_them() {
    let w = World::standard();
    w.write(&Cfg {
        key: "uid",
        policy: "max-adds 2",
        ..Cfg::default()
    });

    // Too small a release: refused with apply's message, nothing applied.
    let out = w.roster(&["sync", "--auto-approve", "--allow-adds", "2"]);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("--allow-adds 2 does not cover the 3 held adds"),
        "{stderr}"
    );
    assert!(usernames(&w).is_empty(), "{:?}", usernames(&w));

    // Another kind's flag releases nothing: the adds stay held (exit 3) and the output says
    // which flag would.
    let out = w.roster(&["sync", "--auto-approve", "--allow-removes", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("--allow-adds 3"), "{said}");
    assert!(usernames(&w).is_empty(), "{:?}", usernames(&w));

    // Enough: every held add is applied.
    w.ok(&["sync", "--auto-approve", "--allow-adds", "3"], 0);
    assert_eq!(usernames(&w), ["alice", "bob", "carol"]);
}
