//! Apply against a target that sheds load (`support/busy_scim.rs`): on 429 the apply sends
//! fewer requests at once and wins them back after answers, every account is created
//! exactly once, and a `rate-limit` holds in every second the target counts.

mod support;

use support::busy_scim::{BusyScim, Shedding, TOKEN, most_in_one_second};
use support::{expect_code, roster_in, text};

/// A CSV of `n` people and a roster.kdl for `double`, with `target` nodes added.
fn workdir(n: usize, double: &BusyScim, target: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut csv = String::from("id,uid,cn,mail\n");
    for i in 1..=n {
        csv.push_str(&format!(
            "k-{i:04},user{i:04},User {i:04},user{i:04}@example.com\n"
        ));
    }
    std::fs::write(dir.path().join("people.csv"), csv).expect("csv");
    let config = format!(
        r#"state "state.db"
source "csv" {{ path "people.csv"; }}
target "scim" {{
    url "{url}"
    token env="BUSY_TOKEN"
    {target}
}}
user {{
    key "id"
    username "uid"
    name "cn"
    email "mail"
}}
"#,
        url = double.url
    );
    std::fs::write(dir.path().join("roster.kdl"), config).expect("config");
    dir
}

fn apply(dir: &tempfile::TempDir) -> String {
    let args = ["-v", "apply", "--auto-approve"];
    let out = roster_in(dir.path(), &args, &[("BUSY_TOKEN", TOKEN)]);
    expect_code(&out, &args, 0);
    text(&out.stderr)
}

#[test]
fn on_429_the_apply_halves_its_requests_in_flight_wins_them_back_and_creates_each_account_once() {
    let n = 150;
    let double = BusyScim::start(Shedding {
        max_in_flight: Some(2),
        retry_after: None,
        create_takes: std::time::Duration::from_millis(3),
    });
    let dir = workdir(n, &double, "concurrency 8");
    let log = apply(&dir);

    // Every account once, and nothing else.
    let names = double.usernames();
    assert_eq!(names.len(), n, "{log}");
    assert!(names.values().all(|&count| count == 1), "{names:?}");
    let seen = double.seen();
    let created = seen
        .iter()
        .filter(|s| s.method == "POST" && s.status == 201);
    assert_eq!(created.count(), n);

    // The target shed load, and never saw more than the configured concurrency at once.
    let refused: Vec<_> = seen.iter().filter(|s| s.status == 429).collect();
    assert!(!refused.is_empty(), "the double never shed load");
    assert!(seen.iter().all(|s| s.in_flight <= 8));
    // After the first refusal the limit went down, then up again: the apply says so in its
    // log, in that order.
    let down = log
        .find("answered 429: at most")
        .unwrap_or_else(|| panic!("no decrease in the log:\n{log}"));
    assert!(
        log[down..].contains("answering again"),
        "no increase after the decrease:\n{log}"
    );
    // And the double saw it: after the first refusal, requests came fewer at once than
    // before it for a while (some arrived alone).
    let first = seen
        .iter()
        .position(|s| s.status == 429)
        .expect("a refusal");
    assert!(seen[first..].iter().any(|s| s.in_flight == 1));
}

#[test]
fn a_rate_limit_holds_in_every_second_the_target_counts() {
    let n = 24;
    let double = BusyScim::start(Shedding::default());
    let dir = workdir(n, &double, "concurrency 4\n    rate-limit 8");
    apply(&dir);

    assert_eq!(double.usernames().len(), n);
    let seen = double.seen();
    // Every request counts: the listing of the plan as well as the creates.
    assert!(seen.len() > n);
    let most = most_in_one_second(&seen);
    assert!(most <= 8, "{most} requests within one second");
}
