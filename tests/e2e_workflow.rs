//! The review workflow end to end, against real slapd and scim2-server: saved plans that know
//! when they are stale, apply once, resume after a kill, the state lock, exit codes, history.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::world::*;

/// Waits until `done` holds, up to 30 s.
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

fn created(w: &World) -> usize {
    w.scim
        .log()
        .lines()
        .filter(|l| l.contains("\"POST /v2/Users") && l.contains("\" 201"))
        .count()
}

#[test]
fn a_plan_made_stale_by_a_change_in_the_target_is_refused_and_nothing_applied() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    for (uid, mail) in [
        ("alice", "alice@new.example.com"),
        ("bob", "bob@new.example.com"),
    ] {
        w.slapd.modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: mail\nmail: {mail}\n",
            w.dn(uid)
        ));
    }
    w.ok(&["plan", "--out", "plan.json"], 0);

    // Someone edits bob in the target after the plan was reviewed.
    let bob = w.user("bob");
    w.scim.patch_user(
        bob["id"].as_str().expect("id"),
        json!([{"op": "replace", "path": "displayName", "value": "Robert"}]),
    );

    let out = w.roster(&["apply", "plan.json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stale") && stderr.contains("user bob"),
        "{stderr}"
    );
    assert_eq!(
        emails(&w.user("alice"))[0].0,
        "alice@example.com",
        "nothing applied, alice included"
    );
    assert_eq!(emails(&w.user("bob"))[0].0, "bob@example.com");

    // A fresh plan sees the edit and applies.
    w.ok(&["plan", "--out", "plan2.json"], 0);
    w.ok(&["apply", "plan2.json"], 0);
    assert_eq!(emails(&w.user("bob"))[0].0, "bob@new.example.com");
}

#[test]
fn a_planned_add_whose_username_appeared_in_the_target_is_stale() {
    let w = World::standard();
    w.ok(&["plan", "--out", "plan.json"], 0);
    w.scim.create_user(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol"}),
    );
    let out = w.roster(&["apply", "plan.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stale"), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("an account with username carol now exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(w.scim.users().len(), 1, "nothing applied");
}

#[test]
fn a_plan_made_with_another_config_is_refused() {
    let w = World::standard();
    w.ok(&["plan", "--out", "plan.json"], 0);
    w.write_config("max-removes 3");
    let out = w.roster(&["apply", "plan.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("another config or policy"),
        "{}",
        text(&out.stderr)
    );
    assert!(w.scim.users().is_empty());
}

#[test]
fn a_killed_apply_resumes_without_duplicate_creates_and_its_lock_is_named() {
    const N: usize = 40;
    let w = World::many(N);
    // Slow the apply down so that it can be killed part-way.
    w.write(&Cfg {
        target: "rate-limit 10\n    concurrency 2",
        ..Cfg::default()
    });
    w.ok(&["plan", "--out", "plan.json"], 0);

    let mut apply = w.spawn(&["apply", "plan.json"]);
    wait_until("some users created", || w.scim.users().len() >= 8);
    apply.kill().expect("kill");
    let _ = apply.wait();
    let before = w.scim.users().len();
    assert!(before < N, "killed part-way ({before} created)");

    // The lock is left behind, named, and reported as belonging to a dead process.
    let out = w.roster(&["apply", "plan.json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("locked by `roster apply`") && stderr.contains("no longer running"),
        "{stderr}"
    );
    let lock_id = stderr
        .split("roster unlock ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
        .expect("lock id in the message")
        .to_string();
    w.ok(&["unlock", &lock_id], 0);

    let resumed = w.ok(&["apply", "plan.json"], 0);
    assert!(resumed.contains("already applied earlier"), "{resumed}");
    // The killed run does not stay "running" in the history.
    let runs = w.ok(&["runs"], 0);
    assert!(runs.contains("interrupted"), "{runs}");
    assert!(!runs.contains("running"), "{runs}");
    let users = w.scim.users();
    assert_eq!(users.len(), N);
    let mut keys: Vec<&str> = users
        .iter()
        .filter_map(|u| u["externalId"].as_str())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), N, "every account has its own key");
    assert_eq!(created(&w), N, "every account was created exactly once");

    let again = w.roster(&["apply", "plan.json"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already applied"));
}

#[test]
fn a_second_run_during_a_long_apply_fails_at_once_naming_the_holder() {
    let w = World::many(30);
    w.write(&Cfg {
        target: "rate-limit 10\n    concurrency 1",
        ..Cfg::default()
    });
    w.ok(&["plan", "--out", "plan.json"], 0);
    let mut apply = w.spawn(&["apply", "plan.json"]);
    wait_until("the apply to start", || !w.scim.users().is_empty());

    let start = Instant::now();
    let out = w.roster(&["plan"]);
    let took = start.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("locked by `roster apply`"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", apply.id())), "{stderr}");
    assert!(stderr.contains("lock id"), "{stderr}");
    // Not a timing benchmark: it must not wait for the apply (which takes ~3 s).
    assert!(took < Duration::from_secs(2), "waited {took:?}");

    // The history can be read while the apply runs, without waiting for it.
    let start = Instant::now();
    let runs = w.ok(&["runs"], 0);
    assert!(runs.contains("running"), "{runs}");
    assert!(start.elapsed() < Duration::from_secs(2), "runs waited");

    // Its lock cannot be released from under it: a second run beside it would create the
    // same accounts again.
    let lock_id = stderr
        .split("lock id ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
        .expect("lock id in the message")
        .to_string();
    let out = w.roster(&["unlock", &lock_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("still running"),
        "{}",
        text(&out.stderr)
    );
    let out = w.roster(&["unlock", &lock_id, "--force"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not even with --force on this host"
    );

    let status = apply.wait().expect("apply");
    assert!(status.success());
    assert_eq!(w.scim.users().len(), 30);
}

#[test]
fn exit_codes_of_plan_and_sync() {
    let w = World::standard();
    w.ok(&["plan", "--detailed-exitcode"], 2);
    w.ok(&["plan"], 0);
    // A night that applied everything it planned is a success for cron, systemd and CI.
    w.ok(&["sync", "--auto-approve"], 0);
    assert_eq!(w.scim.users().len(), 3);
    // --detailed-exitcode tells "changes applied" (2) from "nothing to do" (0).
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Carol L.\n",
        w.dn("carol")
    ));
    w.ok(&["sync", "--auto-approve", "--detailed-exitcode"], 2);
    assert_eq!(w.user("carol")["displayName"], "Carol L.");
    w.ok(&["sync", "--auto-approve", "--detailed-exitcode"], 0);
    w.ok(&["sync", "--auto-approve"], 0);

    w.slapd.delete(&w.dn("bob"));
    w.write_config("mode \"remove\"\n    max-source-shrink-percent 50");
    w.ok(&["plan", "--detailed-exitcode"], 3);
    // sync applies what is not held and says some are held.
    w.ok(&["sync", "--auto-approve"], 3);
    assert!(active(&w.user("bob")), "held, not applied");

    // Without a terminal and without --auto-approve, sync refuses to apply.
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Alice L.\n",
        w.dn("alice")
    ));
    let out = w.roster(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--auto-approve"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(w.user("alice")["displayName"], "Alice Liddell");
    // ... and the run is recorded as refused, not left running.
    let runs = w.ok(&["runs", "--limit", "1"], 0);
    assert!(runs.contains("refused"), "{runs}");
}

#[test]
fn a_saved_plan_refuses_flags_that_would_change_what_it_is() {
    let w = World::standard();
    w.ok(&["plan", "--out", "plan.json"], 0);
    for flags in [&["--mode", "delete"][..], &["--max-removes", "5"]] {
        let mut args = vec!["apply", "plan.json"];
        args.extend_from_slice(flags);
        let out = w.roster(&args);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("cannot change a saved plan"), "{stderr}");
        assert!(stderr.contains(flags[0]), "{stderr}");
    }
    assert!(w.scim.users().is_empty(), "nothing applied");
    w.ok(&["apply", "plan.json"], 0);
    assert_eq!(w.scim.users().len(), 3);
}

#[test]
fn a_reader_that_goes_away_is_not_a_crash() {
    let w = World::many(400);
    w.ok(&["plan", "--out", "plan.json"], 0);
    // Far more than a pipe holds, so roster is still writing when the reader leaves.
    for args in [
        &["show", "plan.json", "--format", "json"][..],
        &["show", "plan.json"],
    ] {
        let mut child = w.spawn(args);
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut first).expect("a first line");
        drop(stdout);
        let out = child.wait_with_output().expect("roster");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn runs_and_show_after_several_runs() {
    let w = World::standard();
    w.ok(&["plan", "--out", "plan.json"], 0);
    w.ok(&["apply", "plan.json"], 0);
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: not-an-email\n",
        w.dn("carol")
    ));
    // One of three rejected is a 33 % shrink of usable users: allowed here.
    w.write_config("max-source-shrink-percent 50");
    w.ok(&["plan"], 0);

    let runs = w.ok(&["runs"], 0);
    let rows: Vec<&str> = runs.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{runs}");
    assert!(
        rows[0].contains("plan") && rows[0].contains("no-changes"),
        "{runs}"
    );
    assert!(
        rows[1].contains("apply") && rows[1].contains("applied"),
        "{runs}"
    );
    assert!(
        rows[2].contains("plan") && rows[2].contains("changes"),
        "{runs}"
    );
    let last: String = rows[0].split_whitespace().next().expect("id").to_string();

    // The last plan rejected carol: show lists the record and why.
    let shown = w.ok(&["show", &last], 0);
    assert!(shown.contains("1 rejected record"), "{shown}");
    assert!(
        shown.contains(&w.dn("carol")) && shown.contains("invalid email"),
        "{shown}"
    );

    // The applied plan file shows each action's outcome.
    let shown = w.ok(&["show", "plan.json"], 0);
    assert!(
        shown.contains("+ user alice") && shown.contains("(applied)"),
        "{shown}"
    );

    let csv = w.ok(&["show", "plan.json", "--format", "csv"], 0);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("record,seq,action,object,key,username,status,reason,error,changes")
    );
    assert_eq!(
        lines
            .filter(|l| l.starts_with("action,") && l.contains(",applied,"))
            .count(),
        3,
        "{csv}"
    );
    let csv = w.ok(&["show", &last, "--format", "csv"], 0);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("reject,") && l.contains("invalid email")),
        "{csv}"
    );

    let json: Value =
        serde_json::from_str(&w.ok(&["show", &last, "--format", "json"], 0)).expect("JSON");
    assert_eq!(json["rejects"].as_array().map(Vec::len), Some(1));
}

#[test]
fn compare_shows_what_changed_since_the_reviewed_plan() {
    let w = World::standard();
    w.ok(&["plan", "--out", "reviewed.json"], 0);
    let same = w.ok(&["plan", "--compare", "reviewed.json"], 0);
    assert!(same.contains("the same actions"), "{same}");

    w.slapd.delete(&w.dn("bob"));
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: cn\ncn: Alice L.\n",
        w.dn("alice")
    ));
    w.slapd.add(&support::slapd::person(
        "dave",
        "Dave Grohl",
        Some("dave@example.com"),
        &[],
    ));
    let diff = w.ok(&["plan", "--compare", "reviewed.json"], 0);
    assert!(diff.contains("3 differences"), "{diff}");
    assert!(
        diff.contains("  + add user dave  (not in the reviewed plan)"),
        "{diff}"
    );
    assert!(
        diff.contains("  - add user bob  (no longer planned)"),
        "{diff}"
    );
    assert!(
        diff.contains("  ~ add user alice  (other changes)"),
        "{diff}"
    );
}

#[test]
fn renderings_of_a_real_plan() {
    let w = World::standard();
    w.ok(&["apply", "--auto-approve"], 0);
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: bob@builders.example.com\n",
        w.dn("bob")
    ));
    w.slapd.delete(&w.dn("carol"));
    w.slapd.add(&support::slapd::person(
        "dave",
        "Dave Grohl",
        Some("dave@example.com"),
        &["+1 555 0199"],
    ));
    w.write_config("mode \"remove\"\n    max-source-shrink-percent 50");

    let settings = {
        let mut s = insta::Settings::clone_current();
        s.set_snapshot_path("../snapshots");
        s.set_prepend_module_to_snapshot(false);
        s.add_filter(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[uuid]",
        );
        s.add_filter(r"\d{8}T\d{6}Z-[0-9a-f]{8}", "[plan-id]");
        s.add_filter(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
            "[time]",
        );
        s.add_filter(r#""[0-9a-f]{64}""#, "\"[digest]\"");
        s.add_filter(r#""[0-9a-f]{32}""#, "\"[scim-id]\"");
        s.add_filter(r"http://127\.0\.0\.1:\d+", "http://[scim]");
        // scim2-server numbers versions across all resources, in the order the (concurrent)
        // apply happened to create them.
        s.add_filter(r#"W/\\"\d+\\""#, r#"W/\"[n]\""#);
        s
    };
    settings.bind(|| {
        insta::assert_snapshot!("e2e_plan_human", w.ok(&["plan", "--detailed-exitcode"], 3));
        insta::assert_snapshot!(
            "e2e_plan_markdown",
            w.ok(&["plan", "--format", "markdown"], 0)
        );
        insta::assert_snapshot!("e2e_plan_json", w.ok(&["plan", "--format", "json"], 0));
    });
}

#[test]
fn logs_go_to_a_file_without_secrets_and_plain_output_has_no_control_characters() {
    let w = World::standard();
    let out = w.roster(&["-vv", "--log-file", "roster.log", "apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = std::fs::read_to_string(w.path("roster.log")).expect("log file");
    assert!(log.contains("read 3 source records"), "{log}");
    assert!(
        log.lines().all(|l| l.len() > 24 && l.as_bytes()[4] == b'-'),
        "every line is timestamped:\n{log}"
    );
    for secret in [&w.slapd.admin_password, &w.scim.token] {
        assert!(!log.contains(secret.as_str()), "secret in the log");
        assert!(
            !text(&out.stderr).contains(secret.as_str())
                && !text(&out.stdout).contains(secret.as_str())
        );
    }
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.contains(&0x1b),
            "control characters on a non-terminal:\n{}",
            text(stream)
        );
    }
}
