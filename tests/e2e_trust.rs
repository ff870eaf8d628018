//! A reviewed plan cannot be edited into another one (issue 11, item 1), end to end against
//! real slapd and scim2-server: every edit of a saved plan is refused with nothing applied,
//! a plan made on one runner applies on another with the signing key and only with it, a
//! comment in the config does not make a plan stale, and a fuzzer throws a few hundred
//! broken plan files at `roster apply` without a crash or a target change.

mod support;

use serde_json::{Value, json};
use support::world::*;

const KEY_VAR: &str = "E2E_PLAN_SIGNING_KEY";
const KEY: &str = "a-long-random-key-both-ci-jobs-hold-9f2c";

/// What the target holds, as a value to compare: any write shows (meta.lastModified,
/// versions, values).
fn target_state(w: &World) -> Vec<Value> {
    let mut users = w.scim.users();
    users.sort_by_key(|u| u["userName"].as_str().unwrap_or("").to_string());
    users
}

fn read_plan(w: &World, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(w.path(name)).expect("plan file")).expect("JSON")
}

fn write_plan(w: &World, name: &str, plan: &Value) {
    std::fs::write(
        w.path(name),
        serde_json::to_string_pretty(plan).expect("JSON"),
    )
    .expect("write plan");
}

/// The index of the action on `username`.
fn action_of(plan: &Value, username: &str) -> usize {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .position(|a| a["username"] == username)
        .unwrap_or_else(|| panic!("no action on {username}"))
}

fn sign_plans(w: &World) {
    let path = w.path("roster.kdl");
    let mut config = std::fs::read_to_string(&path).expect("config");
    config.push_str(&format!("plan-signing-key env=\"{KEY_VAR}\"\n"));
    std::fs::write(path, config).expect("config");
}

fn roster_with_key(w: &World, key: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = w.command(args);
    match key {
        Some(key) => command.env(KEY_VAR, key),
        None => command.env_remove(KEY_VAR),
    };
    command.output().expect("run roster")
}

/// Alice, bob and carol in the target; then carol leaves the directory and bob's address
/// changes. Under `mode "remove"` and `max-removes 0`, the plan updates bob and holds the
/// remove of carol.
fn reviewed_plan() -> World {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    w.slapd.delete(&w.dn("carol"));
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: bob@new.example.com\n",
        w.dn("bob")
    ));
    w.write_config(
        r#"mode "remove"
    max-removes 0
    max-source-shrink-percent 100"#,
    );
    w.ok(&["plan", "--out", "plan.json", "--detailed-exitcode"], 3);
    let plan: Value =
        serde_json::from_str(&w.ok(&["show", "plan.json", "--format", "json"], 0)).expect("JSON");
    assert_eq!(
        actions(&plan),
        ["update user bob planned", "remove user carol held"]
    );
    w
}

#[test]
fn every_edit_of_a_saved_plan_is_refused_and_nothing_is_applied() {
    let w = reviewed_plan();
    let before = target_state(&w);
    let plan = read_plan(&w, "plan.json");
    let bob = action_of(&plan, "bob");
    let carol = action_of(&plan, "carol");

    let mut released = plan.clone();
    released["actions"][carol]["status"] = json!("planned");
    released["actions"][carol]
        .as_object_mut()
        .expect("action")
        .remove("held_by");
    released["summary"]["held"] = json!(0);
    let mut deleted = plan.clone();
    deleted["actions"][carol]["action"] = json!("delete");
    deleted["actions"][carol]["status"] = json!("planned");
    let mut redirected = plan.clone();
    let email = redirected["actions"][bob]["changes"]
        .as_array_mut()
        .expect("changes")
        .iter_mut()
        .find(|c| c["field"] == "email")
        .expect("bob's email change");
    email["after"] = json!("bob@attacker.example.net");
    let mut unknown = plan.clone();
    unknown["plan_id"] = json!("20990101T000000Z-0000");

    let edits = [
        (
            "a held remove turned planned",
            released,
            "not the plan roster made",
        ),
        (
            "a remove turned delete",
            deleted,
            "not the plan roster made",
        ),
        ("another address", redirected, "not the plan roster made"),
        (
            "a plan id the store never saw",
            unknown,
            "has never seen it",
        ),
    ];
    for (what, edited, says) in edits {
        write_plan(&w, "edited.json", &edited);
        let out = w.roster(&["apply", "edited.json"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(stderr.contains("refusing plan"), "{what}: {stderr}");
        assert_eq!(target_state(&w), before, "{what}: nothing applied");
    }
    // The unedited plan against a store that never saw it (`--state` elsewhere), no key.
    let out = w.roster(&["apply", "plan.json", "--state", "empty.db"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has never seen it"), "{stderr}");
    assert!(stderr.contains("plan-signing-key"), "{stderr}");
    assert_eq!(target_state(&w), before, "nothing applied");
    let runs = w.ok(&["runs", "--limit", "1", "--state", "empty.db"], 0);
    assert!(runs.contains("error") || runs.contains("refused"), "{runs}");

    // The reviewed plan, as roster wrote it: bob is updated, carol's remove stays held.
    w.ok(&["apply", "plan.json"], 0);
    assert_eq!(emails(&w.user("bob"))[0].0, "bob@new.example.com");
    assert!(active(&w.user("carol")), "held, not applied");
}

#[test]
fn a_plan_made_on_one_runner_applies_on_another_with_the_signing_key_only() {
    let w = World::standard();
    sign_plans(&w);
    // The pull-request job: its own store (state.db), the key.
    let out = roster_with_key(&w, Some(KEY), &["plan", "--out", "plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = read_plan(&w, "plan.json");
    let signature = plan["signature"].as_str().expect("a signed plan");
    assert!(signature.starts_with("hmac-sha256:"), "{signature}");
    assert!(!signature.contains(KEY), "the key never appears");
    // `--format json` prints a signed plan too, so it can be saved as the plan file.
    let out = roster_with_key(&w, Some(KEY), &["plan", "--format", "json"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    assert!(printed["signature"].as_str().is_some(), "{printed}");

    // The job after merge: another runner, an empty store.
    let other = ["apply", "plan.json", "--state", "runner-b.db"];
    let out = roster_with_key(&w, None, &other);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("plan-signing-key"), "{stderr}");
    let out = roster_with_key(&w, Some("another-key-entirely-0000000000"), &other);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("signature does not match"), "{stderr}");
    // An edited byte of a signed plan, with the right key.
    let mut edited = plan.clone();
    let alice = action_of(&edited, "alice");
    edited["actions"][alice]["username"] = json!("mallory");
    write_plan(&w, "edited.json", &edited);
    let out = roster_with_key(
        &w,
        Some(KEY),
        &["apply", "edited.json", "--state", "runner-b.db"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("signature does not match"), "{stderr}");
    assert!(w.scim.users().is_empty(), "nothing applied so far");

    let out = roster_with_key(&w, Some(KEY), &other);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut names: Vec<String> = w
        .scim
        .users()
        .iter()
        .map(|u| u["userName"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob", "carol"]);
    // Applied once, on that store too.
    let out = roster_with_key(&w, Some(KEY), &other);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already applied"));
}

#[test]
fn a_comment_in_the_config_keeps_a_saved_plan_and_a_value_does_not() {
    let w = World::standard();
    w.ok(&["plan", "--out", "plan.json"], 0);
    let path = w.path("roster.kdl");
    let config = std::fs::read_to_string(&path).expect("config");
    let commented = format!(
        "// Reviewed in PR 42.\n{}",
        config.replace(
            "page-size 2",
            "page-size 2   // small pages, so paging is tested"
        )
    );
    std::fs::write(&path, &commented).expect("config");
    w.ok(&["apply", "plan.json"], 0);
    assert_eq!(w.scim.users().len(), 3, "applied");

    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Alice L.\n",
        w.dn("alice")
    ));
    w.ok(&["plan", "--out", "plan.json"], 0);
    std::fs::write(&path, commented.replace("page-size 2", "page-size 3")).expect("config");
    let out = w.roster(&["apply", "plan.json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another config"), "{stderr}");
    assert_eq!(w.user("alice")["displayName"], "Alice Liddell");
}

#[test]
fn an_account_that_is_no_longer_roster_s_is_not_taken_away() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    w.slapd.delete(&w.dn("carol"));
    w.write_config(
        r#"mode "delete"
    max-removes 5
    max-source-shrink-percent 100"#,
    );
    w.ok(&["plan", "--out", "plan.json"], 0);
    // Someone takes the account over by hand: it no longer carries roster's key.
    let carol = w.user("carol");
    let id = carol["id"].as_str().expect("id");
    w.scim.patch_user(
        id,
        json!([{"op": "replace", "path": "externalId", "value": "hr-system-7"}]),
    );
    let out = w.roster(&["apply", "plan.json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("roster takes away only its own"),
        "{stderr}"
    );
    assert_eq!(w.user("carol")["externalId"], "hr-system-7", "not deleted");
}

/// A small deterministic generator: the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One broken plan file, from the real one.
fn mutate(original: &str, plan: &Value, rng: &mut Rng) -> Vec<u8> {
    let bytes = original.as_bytes();
    let n = plan["actions"].as_array().map_or(0, Vec::len);
    let a = rng.below(n);
    let mut edited = plan.clone();
    match rng.below(9) {
        0 | 1 => {
            let mut out = bytes.to_vec();
            for _ in 0..=rng.below(3) {
                let i = rng.below(out.len());
                out[i] ^= (1 + rng.below(255)) as u8;
            }
            return out;
        }
        2 => return bytes[..rng.below(bytes.len())].to_vec(),
        3 => {
            let statuses = [
                "planned", "held", "applied", "failed", "skipped", "applying",
            ];
            edited["actions"][a]["status"] = json!(statuses[rng.below(statuses.len())]);
        }
        4 => {
            let huge: [Value; 5] = [
                json!(u64::MAX),
                json!(-1),
                json!(1e308),
                json!(4_294_967_296u64),
                json!(0),
            ];
            let fields = ["seq", "format_version"];
            let value = huge[rng.below(huge.len())].clone();
            match fields[rng.below(2)] {
                "seq" => edited["actions"][a]["seq"] = value,
                _ => edited["format_version"] = value,
            }
        }
        5 => {
            let depth = 100 + rng.below(5_000);
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let text = serde_json::to_string(&edited).expect("JSON");
            return text
                .replacen("\"changes\":[", &format!("\"changes\":[{deep},"), 1)
                .into_bytes();
        }
        6 => {
            let kinds = ["add", "update", "remove", "delete"];
            edited["actions"][a]["action"] = json!(kinds[rng.below(kinds.len())]);
        }
        7 => {
            let copy = edited["actions"][a].clone();
            if let Some(actions) = edited["actions"].as_array_mut() {
                actions.push(copy);
            }
        }
        _ => {
            let keys = ["plan_id", "mode", "target", "config_digest", "created_at"];
            let key = keys[rng.below(keys.len())];
            edited[key] = json!(format!("{}x", edited[key].as_str().unwrap_or("")));
        }
    }
    serde_json::to_vec_pretty(&edited).expect("JSON")
}

#[test]
fn a_fuzzed_plan_file_never_crashes_apply_and_never_reaches_the_target() {
    const CASES: usize = 300;
    let w = World::standard();
    sign_plans(&w);
    let out = roster_with_key(&w, Some(KEY), &["plan", "--out", "plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let original = std::fs::read_to_string(w.path("plan.json")).expect("plan");
    let plan: Value = serde_json::from_str(&original).expect("JSON");
    let as_read = roster::plan::contract::read_signed(plan.clone()).expect("the plan");
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut refused = 0;
    for case in 0..CASES {
        let bytes = mutate(&original, &plan, &mut rng);
        // A mutation that leaves the same plan (whitespace for whitespace, a default written
        // out) is not an edit.
        if serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v == plan)
            || serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| roster::plan::contract::read_signed(v).ok())
                .as_ref()
                == Some(&as_read)
        {
            continue;
        }
        std::fs::write(w.path("fuzzed.json"), &bytes).expect("write");
        // Half the cases against the store that made the plan, half against one that never
        // saw it, where only the signature can vouch for it.
        let args: &[&str] = if case % 2 == 0 {
            &["apply", "fuzzed.json", "--quiet"]
        } else {
            &["apply", "fuzzed.json", "--quiet", "--state", "other.db"]
        };
        let out = roster_with_key(&w, Some(KEY), args);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "case {case}: {stderr}\n{}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(!stderr.contains("panicked"), "case {case}: {stderr}");
        refused += 1;
    }
    assert!(refused > CASES / 2, "only {refused} cases ran");
    assert!(
        w.scim.users().is_empty(),
        "no fuzzed plan reached the target"
    );
    // The real plan still applies.
    let out = roster_with_key(&w, Some(KEY), &["apply", "plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(w.scim.users().len(), 3);
}
