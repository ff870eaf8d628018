//! What reaches a terminal, a log, a pull-request comment and a spreadsheet, end to end:
//! directory values with control characters (issue 11.3) are shown escaped in every form
//! while the target still gets them exactly; colour only on a terminal; JSON log lines.

mod support;

use support::world::*;

/// ESC sequences that move up a line and erase it, a CR, a fake removal, a bidi override
/// and a C1 control: what a hostile `cn` would use to forge the plan someone reviews.
const EVIL_CN: &str = "Eve\u{1b}[1A\u{1b}[2K\r  - user ceo\u{202e}\u{85}";
const EVIL_UID: &str = "mallory\u{1b}[2K\r- user ceo";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Characters that must never reach the output raw.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
        .collect()
}

/// A CR that returns to the start of the line and a fake removal, in an attribute that may be
/// multi-line text (so the mapping lets CR and LF through to the target).
const EVIL_TITLE: &str = "Ops\r  - user ceo\n  - user cfo";

/// `description` is mapped to the SCIM `title`: the one kind of value that may carry CR and LF.
const TITLE: Cfg<'static> = Cfg {
    url: "",
    tls: "",
    policy: "",
    target: "",
    user: r#"attribute "description" to="title""#,
    key: "",
};

fn hostile_world() -> World {
    let w = World::new(&[]);
    let base = w.slapd.base_dn.clone();
    w.slapd.add(&format!(
        "dn: uid=eve,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: eve\ncn:: {}\nsn: Eve\nmail: eve@example.com\n\n\
         dn: uid=@sum(a1),ou=People,{base}\nobjectClass: inetOrgPerson\nuid: @sum(a1)\ncn: Formula\nsn: F\nmail: f@example.com\n\n\
         dn: uid=dora,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: dora\ncn: Dora\nsn: D\nmail: d@example.com\ndescription:: {title}\n\n\
         dn: cn=Mallory One,ou=People,{base}\nobjectClass: inetOrgPerson\nuid:: {evil}\ncn: Mallory One\nsn: M\nmail: m1@example.com\n\n\
         dn: uid=mallory3,ou=People,{base}\nobjectClass: inetOrgPerson\nuid: mallory3\ncn:: {evil_cn}\nsn: M\n\n",
        b64(EVIL_CN),
        title = b64(EVIL_TITLE),
        evil = b64(EVIL_UID),
        evil_cn = b64("Mallory\u{1b}[2K\r- user ceo"),
    ));
    w.write(&TITLE);
    w
}

/// Each table row of a Markdown plan has its 7 cell separators, no more: no value ended its
/// cell or started a new one.
fn assert_tables_intact(markdown: &str) {
    for line in markdown.lines().filter(|l| l.starts_with("| `")) {
        let mut separators = 0;
        let mut backslashes = 0;
        for c in line.chars() {
            if c == '|' && backslashes % 2 == 0 {
                separators += 1;
            }
            backslashes = if c == '\\' { backslashes + 1 } else { 0 };
        }
        assert_eq!(separators, 7, "a broken table row: {line}");
    }
}

#[test]
fn control_characters_from_the_directory_are_escaped_everywhere_and_applied_exactly() {
    let w = hostile_world();

    let plan = w.ok(
        &["plan", "--out", "plan.json", "--log-file", "roster.log"],
        0,
    );
    assert_eq!(raw_controls(&plan), Vec::<char>::new(), "{plan:?}");
    // The mapping rejects control characters in single-line values (issue 11.8) ...
    assert!(plan.contains("3 rejected records"), "{plan}");
    assert!(!plan.contains("user eve"), "{plan}");
    // ... and what may carry them (multi-line text, here dora's title) never reaches the
    // terminal raw: no line of the plan starts a forged action.
    assert!(
        !plan.lines().any(|l| l.trim_start().starts_with("- user c")),
        "{plan}"
    );

    let log = std::fs::read_to_string(w.path("roster.log")).expect("log file");
    assert!(log.contains("rejected uid=mallory3,"), "{log}");
    assert!(log.contains("rejected uid=eve,"), "{log}");
    assert_eq!(raw_controls(&log), Vec::<char>::new(), "{log:?}");

    let human = w.ok(&["show", "plan.json"], 0);
    assert_eq!(raw_controls(&human), Vec::<char>::new(), "{human:?}");
    assert!(human.contains("Rejected source records (3):"), "{human}");
    assert!(
        human.contains("cn (name) holds a control character"),
        "{human}"
    );

    let markdown = w.ok(&["show", "plan.json", "--format", "markdown"], 0);
    assert_eq!(raw_controls(&markdown), Vec::<char>::new(), "{markdown:?}");
    assert!(markdown.contains("\\@sum(a1)"), "no @-mention: {markdown}");
    assert_tables_intact(&markdown);

    let csv = w.ok(&["show", "plan.json", "--format", "csv"], 0);
    assert_eq!(raw_controls(&csv), Vec::<char>::new(), "{csv:?}");
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .collect::<Result<_, _>>()
        .expect("CSV");
    let usernames: Vec<&str> = rows.iter().map(|r| &r[5]).collect();
    assert!(usernames.contains(&"'@sum(a1)"), "{usernames:?}");
    assert!(
        rows.iter()
            .all(|r| r.iter().all(|cell| !cell.starts_with(['=', '+', '-', '@']))),
        "a cell a spreadsheet would run: {csv}"
    );

    // Escaping is for showing: the target gets the values as the directory has them.
    let applied = w.ok(&["apply", "plan.json"], 0);
    assert!(applied.contains("2 applied, 0 failed"), "{applied}");
    assert_eq!(w.user("dora")["title"], EVIL_TITLE);
    assert_eq!(w.user("@sum(a1)")["displayName"], "Formula");
    assert!(
        w.scim.user_by_username("eve").is_none(),
        "rejected, not sent"
    );
}

#[test]
fn an_update_of_a_hostile_value_is_quoted_and_escaped() {
    let w = World::standard();
    w.write(&TITLE);
    w.ok(&["apply", "--auto-approve"], 0);
    w.slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: description\ndescription:: {}\n",
        w.dn("bob"),
        b64(EVIL_TITLE)
    ));
    let plan = w.ok(&["plan"], 0);
    assert_eq!(raw_controls(&plan), Vec::<char>::new(), "{plan:?}");
    assert!(
        plan.contains("      + title: \"Ops\\r  - user ceo\\n  - user cfo\""),
        "{plan}"
    );
}

/// `script` runs roster on a pseudo-terminal, as a person at a terminal would.
fn on_a_terminal(w: &World, env: &[(&str, &str)], args: &str) -> String {
    let roster = env!("CARGO_BIN_EXE_roster");
    let output = std::process::Command::new("script")
        .args(["-qec", &format!("{roster} {args}"), "/dev/null"])
        .current_dir(w.dir.path())
        .env(LDAP_PASSWORD_VAR, &w.ldap_password)
        .env(SCIM_TOKEN_VAR, &w.scim_token)
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    text(&output.stdout)
}

#[test]
fn the_plan_is_coloured_on_a_terminal_only_and_never_against_no_color() {
    let w = World::standard();
    let piped = w.ok(&["plan"], 0);
    assert!(piped.contains("  + user alice"), "{piped}");
    assert!(!piped.contains('\u{1b}'), "no colour in a pipe: {piped:?}");

    let terminal = on_a_terminal(&w, &[], "plan");
    assert!(
        terminal.contains("  \u{1b}[32m+\u{1b}[0m user alice"),
        "{terminal:?}"
    );
    // -q: no progress bars, whose cursor moves are escape sequences too.
    let no_color = on_a_terminal(&w, &[("NO_COLOR", "1")], "-q plan");
    assert!(no_color.contains("  + user alice"), "{no_color:?}");
    assert!(!no_color.contains("\u{1b}["), "{no_color:?}");
    let flag = on_a_terminal(&w, &[], "--no-color -q plan");
    assert!(flag.contains("  + user alice"), "{flag:?}");
    assert!(!flag.contains("\u{1b}["), "{flag:?}");
}

#[test]
fn json_log_lines_are_one_object_each() {
    let w = World::standard();
    let out = w.roster(&[
        "plan",
        "-v",
        "--log-format",
        "json",
        "--log-file",
        "roster.log",
    ]);
    support::expect_code(&out, &["plan"], 0);
    let stderr = text(&out.stderr);
    let file = std::fs::read_to_string(w.path("roster.log")).expect("log file");
    for text in [&stderr, &file] {
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("Saved")).collect();
        assert!(!lines.is_empty(), "-v logs something");
        for line in lines {
            let object: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(object["time"].is_string(), "{line}");
            assert!(object["level"].is_string(), "{line}");
            assert!(object["message"].is_string(), "{line}");
        }
    }

    // An error ends as one more JSON line, not as a report for people.
    std::fs::write(w.path("roster.kdl"), "source \"nope\" {}\n").expect("write");
    let out = w.roster(&["--log-format", "json", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    let last = text(&out.stderr);
    let object: serde_json::Value =
        serde_json::from_str(last.lines().last().unwrap_or_default()).expect("a JSON line");
    assert_eq!(object["level"], "error");
}
