//! Policy values that know where they were set, and the diagnostic that points at them.

use std::path::Path;

use miette::{GraphicalReportHandler, GraphicalTheme};

use super::*;

const CONFIG: &str = r#"source "ldap" {
    url "ldaps://dc1.example.com:636"
    base-dn "ou=People,dc=example,dc=com"
}
target "scim" {
    url "https://example.com/scim/v2"
    token env="SCIM_TOKEN"
}
user {
    key "entryUUID"
    username "uid"
}
"#;

fn render(diagnostic: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, diagnostic)
        .expect("rendering to a String cannot fail");
    out
}

fn parse_ok(path: &Path, text: &str) -> Config {
    match parse(path, text) {
        Ok(config) => config,
        Err(error) => panic!("expected a valid config: {error:?}"),
    }
}

#[test]
fn a_held_action_can_point_at_the_max_removes_line() {
    let text = format!("{CONFIG}policy {{\n    mode \"remove\"\n    max-removes 10\n}}\n");
    let config = parse_ok(Path::new("roster.kdl"), &text);
    let line = "max-removes 10";
    let at = text.find(line).unwrap();
    assert_eq!(
        config.policy.max_removes.span,
        At::File {
            file: ConfigFile::Config,
            span: SourceSpan::from((at, line.len())),
        }
    );

    let note = config
        .policy_value_at(
            &config.policy.max_removes,
            "held: 12 removes planned, max-removes is 10",
            "max-removes is 10",
        )
        .expect("the value is in the config");
    assert_eq!(note.file_name(), "roster.kdl");
    let rendered = render(&note);
    let lines: Vec<&str> = rendered.lines().collect();
    let shown = lines
        .iter()
        .position(|l| l.ends_with("│     max-removes 10"))
        .unwrap_or_else(|| panic!("the max-removes line is quoted:\n{rendered}"));
    assert!(lines[shown].trim_start().starts_with("15 │"), "{rendered}");
    assert!(lines[shown + 1].contains("──────┬─────"), "{rendered}");
    assert!(
        lines[shown + 2].contains("╰── max-removes is 10"),
        "{rendered}"
    );
    assert!(rendered.contains("held: 12 removes planned, max-removes is 10"));
    assert!(rendered.contains("[roster.kdl:15:5]"), "{rendered}");
}

#[test]
fn a_value_from_a_policy_file_points_into_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "// nightly\nmode \"remove\"\nmax-source-shrink-percent 5\n";
    std::fs::write(dir.path().join("nightly.kdl"), policy).unwrap();
    let config = parse_ok(
        &dir.path().join("roster.kdl"),
        &format!("{CONFIG}policy \"nightly.kdl\"\n"),
    );
    let shrink = &config.policy.max_source_shrink_percent;
    assert_eq!(shrink.value, 5.0);
    let At::File { file, span } = shrink.span else {
        panic!("expected a file, got {:?}", shrink.span);
    };
    assert_eq!(file, ConfigFile::Policy);
    assert_eq!(span.offset(), policy.find("max-source").unwrap());

    let note = config
        .policy_value_at(shrink, "the source shrank by 40%", "the limit")
        .expect("the value is in the policy file");
    assert!(note.file_name().ends_with("nightly.kdl"));
    let rendered = render(&note);
    assert!(rendered.contains("nightly.kdl:3:1]"), "{rendered}");
    assert!(
        rendered.contains("max-source-shrink-percent 5"),
        "{rendered}"
    );

    // Values the file leaves out are roster's defaults; no file can be shown for them.
    assert_eq!(config.policy.max_removes.span, At::Default);
    assert!(
        config
            .policy_value_at(&config.policy.max_removes, "", "")
            .is_none()
    );
}

#[test]
fn command_line_values_say_so_and_point_nowhere() {
    let mut config = parse_ok(Path::new("roster.kdl"), CONFIG);
    config.policy.override_max_removes(3);
    config.policy.override_mode(Mode::Delete);
    assert_eq!(config.policy.max_removes, Cap::Count(3));
    assert_eq!(
        config.policy.max_removes.span,
        At::CommandLine {
            flag: "--max-removes"
        }
    );
    assert_eq!(config.policy.mode, Mode::Delete);
    assert_eq!(config.policy.mode.span, At::CommandLine { flag: "--mode" });
    assert!(config.source_of(&config.policy.mode.span).is_none());
}
