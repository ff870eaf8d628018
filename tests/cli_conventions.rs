//! The command line's conventions that need no server: `roster init` (every starter config
//! validates, none is overwritten), shell completions, the man page, and the deployment
//! examples in `examples/` (each parsed or verified, and referenced from the README).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{expect_code, roster_in, text};

const SOURCES: [&str; 4] = ["ldap", "csv", "servicenow", "freshservice"];

#[test]
fn init_writes_a_starter_that_validates_for_every_source_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    for source in SOURCES {
        let file = format!("{source}.kdl");
        let args = ["-c", &file, "init", "--source", source, "--target", "scim"];
        expect_code(&roster_in(dir.path(), &args, &[]), &args, 0);
        let written = std::fs::read_to_string(dir.path().join(&file)).expect("written");
        assert!(
            written.contains(&format!("source \"{source}\"")),
            "{written}"
        );
        assert!(written.contains("target \"scim\""), "{written}");
        assert!(written.contains("//"), "a commented starter: {written}");
        let validate = ["-c", &file, "validate"];
        let out = roster_in(dir.path(), &validate, &[]);
        expect_code(&out, &validate, 0);
        assert!(
            text(&out.stdout).contains("the configuration is valid"),
            "{}",
            text(&out.stdout)
        );
    }

    std::fs::write(dir.path().join("roster.kdl"), "// mine\n").expect("write");
    let out = roster_in(dir.path(), &["init", "--source", "csv"], &[]);
    expect_code(&out, &["init"], 1);
    assert!(
        text(&out.stderr).contains("exists already"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("roster.kdl")).expect("read"),
        "// mine\n",
        "an existing config is left as it was"
    );
}

#[test]
fn completions_are_scripts_their_shell_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for shell in ["bash", "zsh", "fish"] {
        let out = roster_in(dir.path(), &["completions", shell], &[]);
        expect_code(&out, &["completions", shell], 0);
        let script = text(&out.stdout);
        for word in ["plan", "apply", "unlock", "allow-removes"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        if shell == "bash" {
            let path = dir.path().join("roster.bash");
            std::fs::write(&path, &script).expect("write");
            let check = Command::new("bash")
                .arg("-n")
                .arg(&path)
                .output()
                .expect("bash");
            assert!(check.status.success(), "{}", text(&check.stderr));
        }
    }
}

#[test]
fn the_man_page_renders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = roster_in(dir.path(), &["man"], &[]);
    expect_code(&out, &["man"], 0);
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH roster 1"),
        "{page}"
    );
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff (Debian's groff-base, which man needs too)");
    use std::io::Write;
    groff
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write");
    let rendered = groff.wait_with_output().expect("groff");
    assert!(rendered.status.success());
    assert_eq!(text(&rendered.stderr), "", "groff warnings");
    let shown = text(&rendered.stdout);
    for words in ["NAME", "SYNOPSIS", "roster-completions", "roster-validate"] {
        assert!(shown.contains(words), "{words} not in the page: {shown}");
    }
}

fn example(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &str) -> serde_norway::Value {
    serde_norway::from_str(&example(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_github_actions_workflow_plans_on_pull_requests_and_applies_the_reviewed_plan() {
    let workflow = yaml("github-actions/roster.yml");
    let on = &workflow["on"];
    assert!(on.get("pull_request").is_some() && on.get("push").is_some());
    let jobs = &workflow["jobs"];
    let steps =
        |job: &str| -> String { serde_norway::to_string(&jobs[job]["steps"]).expect("steps") };
    let plan = steps("plan");
    assert!(
        plan.contains("roster --state \"$ROSTER_STATE\" plan --out plan.json --format markdown")
    );
    assert!(plan.contains("actions/upload-artifact") && plan.contains("gh pr comment"));
    let apply = steps("apply");
    assert!(apply.contains("gh run download") && apply.contains("apply plan.json"));
    assert_eq!(jobs["apply"]["if"], "github.event_name == 'push'");
}

#[test]
fn the_gitlab_pipeline_plans_on_merge_requests_and_applies_by_hand() {
    let pipeline = yaml("gitlab-ci/.gitlab-ci.yml");
    assert_eq!(
        serde_norway::to_string(&pipeline["stages"]).expect("stages"),
        "- plan\n- apply\n"
    );
    let script = |job: &str| serde_norway::to_string(&pipeline[job]["script"]).expect("script");
    assert!(script("plan:review").contains("--format markdown"));
    assert!(script("plan:review").contains("merge_requests/$CI_MERGE_REQUEST_IID/notes"));
    assert!(script("apply").contains("roster --state \"$ROSTER_STATE\" apply plan.json"));
    let rule = serde_norway::to_string(&pipeline["apply"]["rules"]).expect("rules");
    assert!(rule.contains("when: manual"), "{rule}");
}

#[test]
fn the_systemd_units_verify() {
    let service = example("systemd/roster-sync.service");
    let timer = example("systemd/roster-sync.timer");
    assert!(service.contains("sync --auto-approve") && service.contains("Type=oneshot"));
    assert!(timer.contains("OnCalendar=") && timer.contains("Persistent=true"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the units' syntax is not verified");
        return;
    }
    // verify checks that ExecStart's program exists: the real binary stands in for the
    // installed one.
    let dir = tempfile::tempdir().expect("temp dir");
    let service = service.replace("/usr/local/bin/roster", env!("CARGO_BIN_EXE_roster"));
    std::fs::write(dir.path().join("roster-sync.service"), service).expect("write");
    std::fs::write(dir.path().join("roster-sync.timer"), timer).expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("roster-sync.service"))
        .arg(dir.path().join("roster-sync.timer"))
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "no warnings");
}

#[test]
fn the_cron_line_is_a_valid_cron_d_entry() {
    let cron = example("cron/roster");
    let entries: Vec<&str> = cron
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.contains('='))
        .collect();
    assert_eq!(entries.len(), 1, "{cron}");
    let fields: Vec<&str> = entries[0].split_whitespace().collect();
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (low, high)) in fields.iter().zip(ranges) {
        if *field != "*" {
            let n: u32 = field.parse().unwrap_or_else(|_| panic!("field {field}"));
            assert!((low..=high).contains(&n), "{field} outside {low}..{high}");
        }
    }
    assert_eq!(fields[5], "roster", "cron.d lines name the user");
    assert!(entries[0].contains("sync --auto-approve"));
    let check = Command::new("sh")
        .args(["-n", "-c", &fields[6..].join(" ")])
        .output()
        .expect("sh");
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn the_readme_points_at_every_example() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    for file in [
        "examples/systemd/roster-sync.service",
        "examples/systemd/roster-sync.timer",
        "examples/cron/roster",
        "examples/github-actions/roster.yml",
        "examples/gitlab-ci/.gitlab-ci.yml",
    ] {
        assert!(readme.contains(file), "README does not mention {file}");
    }
}
