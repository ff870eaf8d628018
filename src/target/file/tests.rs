//! The file target on its own: what the calls stage, what one write puts in the file, and
//! what the store keeps for the next plan.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::config::Spanned;

fn config(path: &Path, format: FileFormat, content: FileContent) -> FileTarget {
    FileTarget {
        path: Spanned::new(path.to_path_buf(), (0, 0).into()),
        format,
        content,
        base_dn: (format == FileFormat::Ldif)
            .then(|| Spanned::new("ou=People,dc=example,dc=com".to_string(), (0, 0).into())),
    }
}

fn user(key: &str, username: &str, name: &str) -> DesiredUser {
    DesiredUser {
        key: key.into(),
        username: username.into(),
        name: Some(name.into()),
        email: Some(format!("{username}@example.com")),
        phones: vec!["+1 555 0100".into()],
        fields: BTreeMap::from([("title".to_string(), FieldValue::Set("Engineer".into()))]),
        active: true,
    }
}

fn open(path: &Path, format: FileFormat, content: FileContent, kept: Option<&str>) -> File {
    File::new(&config(path, format, content), vec!["title".into()], kept).expect("file target")
}

fn listed(target: &File) -> Vec<TargetUser> {
    let mut rows = Vec::new();
    target.list_users(&mut |r| rows.push(r)).expect("list");
    rows
}

#[test]
fn one_write_holds_every_change_and_the_kept_state_is_the_next_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("people.csv");
    let target = open(&path, FileFormat::Csv, FileContent::All, None);
    assert!(listed(&target).is_empty());
    target
        .create_user(&user("k1", "alice", "Alice"))
        .expect("add");
    target.create_user(&user("k2", "bob", "Bob")).expect("add");
    assert!(!path.exists(), "nothing is written before the apply ends");
    let kept = target
        .finish_apply()
        .expect("write")
        .kept
        .expect("state to keep");
    assert_eq!(
        std::fs::read_to_string(&path).expect("file"),
        "key,username,name,email,phone,title,active\n\
         k1,alice,Alice,alice@example.com,+1 555 0100,Engineer,true\n\
         k2,bob,Bob,bob@example.com,+1 555 0100,Engineer,true\n"
    );

    // The next run starts from what was written.
    let target = open(&path, FileFormat::Csv, FileContent::All, Some(&kept));
    let rows = listed(&target);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.is_managed()), "{rows:?}");
    let update = UserUpdate {
        name: Some("Alice Liddell".into()),
        add_phones: vec!["+1-555-0100".into(), "+1 555 0199".into()],
        fields: BTreeMap::from([("title".to_string(), FieldValue::Clear)]),
        ..UserUpdate::default()
    };
    target.update_user("k1", None, &update).expect("update");
    target.remove_user("k2", None).expect("remove");
    target.finish_apply().expect("write");
    assert_eq!(
        std::fs::read_to_string(&path).expect("file"),
        "key,username,name,email,phone,title,active\n\
         k1,alice,Alice Liddell,alice@example.com,+1 555 0100; +1 555 0199,,true\n\
         k2,bob,Bob,bob@example.com,+1 555 0100,Engineer,false\n"
    );
    target.delete_user("k2", None).expect("delete");
    target
        .delete_user("k2", None)
        .expect("a row already gone is no error");
    target.finish_apply().expect("write");
    let file = std::fs::read_to_string(&path).expect("file");
    assert!(!file.contains("bob"), "{file}");
    assert_eq!(
        target.finish_apply().expect("nothing to do").kept,
        None,
        "no changes, no write"
    );
}

#[test]
fn a_second_account_of_one_key_or_username_is_a_conflict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = open(
        &dir.path().join("people.csv"),
        FileFormat::Csv,
        FileContent::All,
        None,
    );
    target
        .create_user(&user("k1", "alice", "Alice"))
        .expect("add");
    let again = target.create_user(&user("k2", "ALICE", "Other"));
    assert!(again.is_err_and(|e| e.is_conflict()));
    let same_key = target.create_user(&user("k1", "carol", "Carol"));
    assert!(same_key.is_err_and(|e| e.is_conflict()));
    let found = target.find_user("Alice").expect("find");
    assert_eq!(found.map(|u| u.id).as_deref(), Some("k1"));
    target
        .create_user(&user("k3", "carol", "Carol"))
        .expect("add");
    let rename = UserUpdate {
        username: Some("alice".into()),
        ..UserUpdate::default()
    };
    assert!(
        target
            .update_user("k3", None, &rename)
            .is_err_and(|e| e.is_conflict())
    );
}

#[test]
fn a_failed_write_keeps_the_old_file_and_no_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out").join("people.csv");
    let target = open(&path, FileFormat::Csv, FileContent::All, None);
    let missing = target.list_users(&mut |_| {});
    assert!(
        missing.is_err_and(|e| e.to_string().contains("does not exist")),
        "a plan for a file that cannot be written is refused while reading"
    );
    std::fs::create_dir(dir.path().join("out")).expect("mkdir");
    target
        .create_user(&user("k1", "alice", "Alice"))
        .expect("add");
    // A directory where the file goes: the rename over it fails.
    std::fs::create_dir_all(path.join("in-the-way")).expect("mkdir");
    let failed = target.finish_apply();
    assert!(failed.is_err(), "{failed:?}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["people.csv"],
        "no temporary file is left behind"
    );
}

#[test]
fn changes_content_has_an_action_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("changes.csv");
    let target = open(&path, FileFormat::Csv, FileContent::Changes, None);
    target
        .create_user(&user("k1", "alice", "Alice"))
        .expect("add");
    target.create_user(&user("k2", "bob", "Bob")).expect("add");
    let kept = target.finish_apply().expect("write").kept.expect("state");
    let target = open(&path, FileFormat::Csv, FileContent::Changes, Some(&kept));
    target.remove_user("k1", None).expect("remove");
    target.delete_user("k2", None).expect("delete");
    target.finish_apply().expect("write");
    assert_eq!(
        std::fs::read_to_string(&path).expect("file"),
        "action,key,username,name,email,phone,title,active\n\
         remove,k1,alice,Alice,alice@example.com,+1 555 0100,Engineer,false\n\
         delete,k2,bob,Bob,bob@example.com,+1 555 0100,Engineer,true\n"
    );
}

#[test]
fn xlsx_is_a_workbook_of_string_cells() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("people.xlsx");
    let target = open(&path, FileFormat::Xlsx, FileContent::All, None);
    let mut formula = user("k1", "alice", "=1+2");
    formula.phones.clear();
    target.create_user(&formula).expect("add");
    target.finish_apply().expect("write");
    let mut book: Xlsx<_> = open_workbook(&path).expect("a workbook calamine reads");
    let range = book.worksheet_range(xlsx::SHEET).expect("the sheet");
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => panic!("not a string cell: {other:?}"),
                })
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "key", "username", "name", "email", "phone", "title", "active"
            ],
            vec![
                "k1",
                "alice",
                "=1+2",
                "alice@example.com",
                "",
                "Engineer",
                "true"
            ],
        ]
    );
}

#[test]
fn ldif_content_and_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("people.ldif");
    let target = open(&path, FileFormat::Ldif, FileContent::All, None);
    target
        .create_user(&user("k1", "zoë", "Zoë, Lead"))
        .expect("add");
    let kept = target.finish_apply().expect("write").kept.expect("state");
    assert_eq!(
        std::fs::read_to_string(&path).expect("file"),
        "version: 1\n\n\
         dn:: dWlkPXpvw6ssb3U9UGVvcGxlLGRjPWV4YW1wbGUsZGM9Y29t\n\
         key: k1\nusername:: em/Dqw==\nname:: Wm/DqywgTGVhZA==\nemail:: em/Dq0BleGFtcGxlLmNvbQ==\n\
         phone: +1 555 0100\ntitle: Engineer\nactive: TRUE\n"
    );
    let path = dir.path().join("changes.ldif");
    let target = open(&path, FileFormat::Ldif, FileContent::Changes, Some(&kept));
    let rename = UserUpdate {
        username: Some("zoe".into()),
        ..UserUpdate::default()
    };
    target.update_user("k1", None, &rename).expect("rename");
    target.delete_user("k1", None).expect("delete");
    target.finish_apply().expect("write");
    let text = std::fs::read_to_string(&path).expect("file");
    assert!(
        text.starts_with(
            "version: 1\n\n\
             dn:: dWlkPXpvw6ssb3U9UGVvcGxlLGRjPWV4YW1wbGUsZGM9Y29t\n\
             changetype: modrdn\nnewrdn: uid=zoe\ndeleteoldrdn: 1\n\n\
             dn: uid=zoe,ou=People,dc=example,dc=com\nchangetype: modify\n\
             replace: key\nkey: k1\n-\nreplace: username\nusername: zoe\n-\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("\ndn: uid=zoe,ou=People,dc=example,dc=com\nchangetype: delete\n"),
        "{text}"
    );
}

#[test]
fn a_damaged_kept_state_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir.path().join("p.csv"), FileFormat::Csv, FileContent::All);
    let err = File::new(&cfg, Vec::new(), Some("{not json")).expect_err("refused");
    assert!(err.to_string().contains("damaged state store"), "{err}");
}
