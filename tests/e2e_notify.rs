//! Notifications and reports end to end, against real slapd, scim2-server and an SMTP
//! server (aiosmtpd): who is told what, a notification that fails never changes the run,
//! secrets never leave, and the history and exports say what the target holds.

mod support;

use serde_json::Value;
use support::smtp::{SmtpOptions, SmtpServer, WebhookReceiver};
use support::world::*;

const SMTP_PASSWORD_VAR: &str = "E2E_SMTP_PASSWORD";
const SMTP_PASSWORD: &str = "smtp-Pa55word-never-shown";
/// What a chat webhook carries in its path: a token.
const HOOK_TOKEN: &str = "T0001B0002XyZsecretHookToken";

/// Appends a `notify` block to the world's roster.kdl.
fn notify(w: &World, block: &str) {
    let path = w.path("roster.kdl");
    let mut config = std::fs::read_to_string(&path).expect("read config");
    config.push_str(&format!("notify {{\n{block}\n}}\n"));
    std::fs::write(path, config).expect("write config");
}

fn runs_json(w: &World, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["runs", "--format", "json"];
    args.extend_from_slice(extra);
    let out = w.ok(&args, 0);
    serde_json::from_str::<Value>(&out)
        .expect("runs JSON")
        .as_array()
        .expect("array")
        .clone()
}

fn with_password(w: &World, args: &[&str]) -> std::process::Output {
    w.command(args)
        .env(SMTP_PASSWORD_VAR, SMTP_PASSWORD)
        .output()
        .expect("run roster")
}

/// A world whose first sync created alice, bob and carol, then lost bob and carol from the
/// directory: the next remove-mode sync holds both removes over `max-removes 1`.
fn world_with_held_removes() -> World {
    let w = World::standard();
    w.write_config("mode \"remove\"\nmax-removes 1\nmax-source-shrink-percent 80");
    w.ok(&["sync", "--auto-approve"], 0);
    w.slapd.delete(&w.dn("bob"));
    w.slapd.delete(&w.dn("carol"));
    w
}

#[test]
fn a_sync_that_holds_removes_emails_and_posts_it_without_leaking_the_secrets() {
    let w = world_with_held_removes();
    let smtp = SmtpServer::start(SmtpOptions {
        auth: Some(("roster", SMTP_PASSWORD)),
        ..SmtpOptions::default()
    });
    let hooks = WebhookReceiver::start(200);
    notify(
        &w,
        &format!(
            r#"email "it-ops@example.com" "oncall@example.com" smtp="127.0.0.1:{port}" from="roster@example.com" tls="none" {{
        smtp-user "roster"
        smtp-password env="{SMTP_PASSWORD_VAR}"
    }}
    webhook "{base}/services/{HOOK_TOKEN}"
    on "held" "failure""#,
            port = smtp.port,
            base = hooks.url_base
        ),
    );
    let out = with_password(&w, &["sync", "--auto-approve", "-v"]);
    support::expect_code(&out, &["sync"], 3);

    // The mail arrived, authenticated, to both recipients, saying what is held.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["login"], "roster");
    assert_eq!(mail["from"], "roster@example.com");
    assert_eq!(
        mail["to"],
        serde_json::json!(["it-ops@example.com", "oncall@example.com"])
    );
    let data = mail["data"].as_str().expect("mail text");
    assert!(data.contains("Subject: roster sync on"), "{data}");
    assert!(data.contains("2 held"), "{data}");
    assert!(
        data.contains("- user bob") && data.contains("- user carol"),
        "{data}"
    );
    assert!(data.contains("max-removes is 1"), "{data}");

    // The webhook got the run, its counts and a link-free text.
    let received = hooks.received();
    assert_eq!(received.len(), 1);
    let (path, body) = &received[0];
    assert_eq!(path, &format!("/services/{HOOK_TOKEN}"));
    let run_id = body["run_id"].as_i64().expect("run_id");
    assert_eq!(body["kind"], "sync");
    assert_eq!(body["held"]["remove"], 2);
    assert_eq!(body["held"]["total"], 2);
    assert_eq!(body["summary"]["remove"], 2);
    assert_eq!(body["summary"]["applied"], 0);
    let text = body["text"].as_str().expect("text");
    assert!(text.contains("2 held by a cap"), "{text}");
    assert!(!text.contains("http") && !text.contains("://"), "{text}");

    // The run records both deliveries; show names the webhook by its host only.
    let shown = w.ok(&["show", &run_id.to_string()], 0);
    assert!(
        shown.contains("Notified by email to it-ops@example.com, oncall@example.com."),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("Notified by webhook to {}.", hooks.url_base)),
        "{shown}"
    );
    let runs = runs_json(&w, &[]);
    assert_eq!(runs[0]["notifications"].as_array().map(Vec::len), Some(2));
    assert_eq!(runs[0]["held"], 2);

    // Neither secret is in the output, the log or the store.
    let state = std::fs::read(w.path("state.db")).expect("state");
    let wal = std::fs::read(w.path("state.db-wal")).unwrap_or_default();
    for secret in [SMTP_PASSWORD, HOOK_TOKEN] {
        for (what, bytes) in [
            ("stdout", &out.stdout),
            ("stderr", &out.stderr),
            ("state", &state),
            ("wal", &wal),
        ] {
            assert!(
                !String::from_utf8_lossy(bytes).contains(secret),
                "{secret} leaked into {what}"
            );
        }
        assert!(!shown.contains(secret));
    }
    // Nothing changed in the target: the removes are held.
    assert!(active(&w.user("bob")) && active(&w.user("carol")));
}

#[test]
fn a_dead_smtp_server_and_a_failing_webhook_change_nothing_but_are_recorded() {
    let w = World::standard();
    let hooks = WebhookReceiver::start(500);
    let dead = support::slapd::closed_port();
    notify(
        &w,
        &format!(
            r#"email "it-ops@example.com" smtp="127.0.0.1:{dead}" from="roster@example.com" tls="starttls" {{
        smtp-user "roster"
        smtp-password env="{SMTP_PASSWORD_VAR}"
    }}
    webhook "{base}/services/{HOOK_TOKEN}"
    on "always""#,
            base = hooks.url_base
        ),
    );
    let out = with_password(&w, &["sync", "--auto-approve"]);
    // Exactly as without notifications: everything applied, exit 0.
    support::expect_code(&out, &["sync"], 0);
    assert_eq!(w.scim.users().len(), 3, "the sync applied everything");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("notification to"),
        "the failure is logged: {stderr}"
    );
    assert!(
        !stderr.contains(HOOK_TOKEN) && !stderr.contains(SMTP_PASSWORD),
        "{stderr}"
    );
    assert!(!hooks.received().is_empty(), "the webhook was tried");

    let runs = runs_json(&w, &[]);
    let run = &runs[0];
    assert_eq!(run["outcome"], "applied");
    assert_eq!(run["applied"], 3);
    let notes = run["notifications"].as_array().expect("notifications");
    assert_eq!(notes.len(), 2, "{notes:?}");
    for note in notes {
        assert_eq!(note["sent"], false, "{note}");
        let error = note["error"].as_str().expect("error");
        assert!(
            !error.contains(HOOK_TOKEN) && !error.contains(SMTP_PASSWORD),
            "{error}"
        );
    }
    assert!(
        notes[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("127.0.0.1:{dead}"))
    );
    assert!(
        notes[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 500")
    );
    let shown = w.ok(&["show", &run["id"].to_string()], 0);
    assert!(
        shown.contains("The email notification to it-ops@example.com was not sent"),
        "{shown}"
    );
    assert!(
        shown.contains("The webhook notification to http://127.0.0.1"),
        "{shown}"
    );
}

#[test]
fn starttls_is_required_and_verified_against_the_ca_file() {
    let w = World::standard();
    // The slapd of the world has a server certificate for 127.0.0.1 signed by its CA.
    let pki = w.slapd.ca_file.parent().expect("slapd dir").to_path_buf();
    let smtp = SmtpServer::start(SmtpOptions {
        tls: Some((&pki.join("server.pem"), &pki.join("server.key"))),
        auth: Some(("roster", SMTP_PASSWORD)),
    });
    let block = |ca: &std::path::Path| {
        format!(
            r#"email "it-ops@example.com" smtp="127.0.0.1:{port}" from="roster@example.com" ca-file="{ca}" {{
        smtp-user "roster"
        smtp-password env="{SMTP_PASSWORD_VAR}"
    }}
    on "changes""#,
            port = smtp.port,
            ca = ca.display()
        )
    };
    notify(&w, &block(&w.slapd.other_ca_file));
    let out = with_password(&w, &["sync", "--auto-approve"]);
    support::expect_code(&out, &["sync"], 0);
    assert!(
        smtp.messages().is_empty(),
        "a server the CA did not sign gets nothing"
    );
    let runs = runs_json(&w, &[]);
    let error = runs[0]["notifications"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!error.is_empty(), "{:?}", runs[0]);

    w.write_config("");
    notify(&w, &block(&w.slapd.ca_file));
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: alice@new.example.com\n",
        w.dn("alice")
    ));
    let out = with_password(&w, &["sync", "--auto-approve"]);
    support::expect_code(&out, &["sync"], 0);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["tls"], true);
    assert_eq!(mails[0]["login"], "roster");
    assert!(
        mails[0]["data"]
            .as_str()
            .unwrap_or_default()
            .contains("1 applied")
    );
}

#[test]
fn a_run_that_matches_no_on_event_sends_nothing() {
    let w = World::standard();
    let hooks = WebhookReceiver::start(200);
    notify(
        &w,
        &format!("webhook \"{}/hook\"\n    on \"failure\"", hooks.url_base),
    );
    w.ok(&["sync", "--auto-approve"], 0);
    w.ok(&["sync", "--auto-approve"], 0);
    assert!(hooks.received().is_empty());
    assert!(
        runs_json(&w, &[])
            .iter()
            .all(|r| r["notifications"] == serde_json::json!([]))
    );

    // A refused plan is a failure: an empty directory against managed accounts.
    for uid in ["alice", "bob", "carol"] {
        w.slapd.delete(&w.dn(uid));
    }
    let out = w.roster(&["sync", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    let received = hooks.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].1["outcome"], "refused");
    assert_eq!(w.scim.users().len(), 3, "nothing removed");
}

#[test]
fn show_of_an_apply_run_is_the_plan_it_applied_with_outcomes_and_releases_are_not_held() {
    let w = world_with_held_removes();
    w.ok(&["plan", "--out", "plan.json"], 0);
    let planned = w.ok(&["show", "plan.json"], 0);
    assert!(planned.contains("2 to remove (held)"), "{planned}");

    w.ok(&["apply", "plan.json", "--allow-removes", "2"], 0);
    assert!(!active(&w.user("bob")) && !active(&w.user("carol")));
    let apply = &runs_json(&w, &["--kind", "apply"])[0];
    let id = apply["id"].to_string();
    assert_eq!(apply["applied"], 2);
    assert_eq!(apply["held"], 0);

    let shown = w.ok(&["show", &id], 0);
    assert!(
        shown.contains(&format!("Run {id} (apply): applied")),
        "{shown}"
    );
    assert!(
        shown.contains("- user bob") && shown.contains("(applied)"),
        "{shown}"
    );
    assert!(
        !shown.contains("(held") && shown.contains("0 held."),
        "released removes are not held: {shown}"
    );
    assert!(shown.contains("Outcome: 2 applied, 0 failed."), "{shown}");
    assert!(!w.ok(&["show", "plan.json"], 0).contains("(held"));

    // JSON: the plan contract object itself, with rejects added, not a wrapper.
    let json: Value = serde_json::from_str(&w.ok(&["show", &id, "--format", "json"], 0)).unwrap();
    assert_eq!(json["format_version"], 1);
    assert!(json["plan_id"].is_string());
    assert!(json.get("plan").is_none());
    assert_eq!(json["summary"]["held"], 0);
    assert_eq!(json["summary"]["remove"], 2);
    assert!(json["rejects"].is_array());
    assert_eq!(json["run"]["kind"], "apply");
    assert_eq!(
        actions(&json),
        vec!["remove user bob applied", "remove user carol applied"]
    );

    // The records export: every action with its outcome.
    let records = w.ok(&["show", &id, "--records"], 0);
    let mut lines = records.lines();
    assert_eq!(
        lines.next(),
        Some("seq,action,object,key,username,status,held_by,reason,error,changes,target_id")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{records}");
    assert!(rows.iter().all(|r| r.contains(",applied,")), "{records}");
}

#[test]
fn runs_are_filtered_by_kind_status_and_time_and_errors_export_the_rejects() {
    let w = World::new(&[
        ("alice", "Alice Liddell", Some("alice@example.com"), &[]),
        ("dora", "Dora Bad", Some("not an address"), &[]),
    ]);
    w.ok(&["plan"], 0);
    w.ok(&["sync", "--auto-approve"], 0);
    w.ok(&["sync", "--auto-approve"], 0);

    assert_eq!(runs_json(&w, &[]).len(), 3);
    let syncs = runs_json(&w, &["--kind", "sync"]);
    assert_eq!(syncs.len(), 2);
    assert!(syncs.iter().all(|r| r["kind"] == "sync"));
    let ids: Vec<i64> = syncs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids[0] > ids[1], "newest first");
    let applied = runs_json(&w, &["--status", "applied,no-changes"]);
    assert_eq!(
        applied
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["no-changes", "applied"]
    );
    assert_eq!(runs_json(&w, &["--limit", "1"]).len(), 1);
    assert_eq!(runs_json(&w, &["--since", "2999-01-01"]).len(), 0);
    assert_eq!(runs_json(&w, &["--until", "2000-01-01"]).len(), 0);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        runs_json(&w, &["--until", &today]).len(),
        3,
        "a date includes its day"
    );
    assert_eq!(runs_json(&w, &["--since", &today]).len(), 3);

    let out = w.roster(&["runs", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--since \"last tuesday\""),
        "{}",
        text(&out.stderr)
    );
    let out = w.roster(&["runs", "--status", "fine"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses an unknown outcome"
    );

    let csv = w.ok(&["runs", "--format", "csv", "--kind", "plan"], 0);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("id,kind,started_at,finished_at")
    );
    assert_eq!(lines.count(), 1, "{csv}");

    // The error report of the first sync: dora's record was rejected.
    let first_sync = ids[1].to_string();
    w.ok(
        &[
            "show",
            &first_sync,
            "--errors=errors.csv",
            "--records=records.csv",
        ],
        0,
    );
    let errors = std::fs::read_to_string(w.path("errors.csv")).expect("errors.csv");
    let mut lines = errors.lines();
    assert_eq!(
        lines.next(),
        Some("kind,seq,origin,action,object,key,username,error")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{errors}");
    assert!(rows[0].starts_with("rejected,,\"uid=dora,"), "{errors}");
    assert!(rows[0].contains("invalid email"), "{errors}");
    let records = std::fs::read_to_string(w.path("records.csv")).expect("records.csv");
    assert!(records.contains(",alice,applied,"), "{records}");
    let out = w.roster(&["show", &first_sync, "--errors", "--records"]);
    assert_eq!(out.status.code(), Some(1), "both cannot go to stdout");
}
