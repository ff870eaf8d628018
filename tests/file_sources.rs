//! The file sources (`source "csv"`, `source "ldif"`) on files written to a temporary
//! directory: what each record holds, where it came from, and how a bad file fails the read.

use std::path::{Path, PathBuf};

use roster::config::{CsvSource, LdifSource, Spanned};
use roster::model::SourceRecord;
use roster::source::csv::CsvFile;
use roster::source::ldif::LdifFile;
use roster::source::{Source, SourceError};

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, (0, 0).into())
}

/// A file in a fresh temporary directory (kept alive by the returned guard).
fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write file");
    (dir, path)
}

fn read(mut source: impl Source, attrs: &[&str]) -> Result<Vec<SourceRecord>, SourceError> {
    let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
    let mut records = Vec::new();
    let count = source.read_users(&attrs, &mut |r| records.push(r))?;
    assert_eq!(
        count,
        records.len() as u64,
        "the count is what the sink got"
    );
    Ok(records)
}

fn read_csv(text: &str, delimiter: u8) -> (Result<Vec<SourceRecord>, SourceError>, PathBuf) {
    read_csv_bytes(text.as_bytes(), delimiter)
}

fn read_csv_bytes(
    bytes: &[u8],
    delimiter: u8,
) -> (Result<Vec<SourceRecord>, SourceError>, PathBuf) {
    let (_dir, path) = file("people.csv", bytes);
    let source = CsvFile::new(CsvSource {
        path: spanned(path.clone()),
        delimiter,
    });
    (read(source, &[]), path)
}

fn read_ldif(text: &str) -> (Result<Vec<SourceRecord>, SourceError>, PathBuf) {
    let (_dir, path) = file("export.ldif", text.as_bytes());
    let source = LdifFile::new(LdifSource {
        path: spanned(path.clone()),
    });
    (read(source, &[]), path)
}

/// `(file, line, message)` of a `SourceError::File`.
fn file_error(result: Result<Vec<SourceRecord>, SourceError>) -> (String, Option<u64>, String) {
    match result {
        Err(SourceError::File {
            path,
            line,
            message,
        }) => (path, line, message),
        other => panic!("expected a file error, got {other:?}"),
    }
}

fn values<'r>(record: &'r SourceRecord, name: &str) -> Vec<&'r str> {
    record.values(name).iter().map(String::as_str).collect()
}

fn origin_line(path: &Path, line: u64) -> String {
    format!("{}:{line}", path.display())
}

// ---- CSV ----

#[test]
fn csv_quoted_fields_hold_delimiters_quotes_and_line_ends() {
    let text = "uid,cn,mail,title\n\
                alice,\"Liddell, Alice\",alice@example.com,plain\n\
                bob,\"Bob \"\"The Builder\"\"\",bob@example.com,\"two\nlines\"\n\
                carol,Carol,carol@example.com,last\n";
    let (records, path) = read_csv(text, b',');
    let records = records.expect("valid CSV");
    assert_eq!(records.len(), 3);
    assert_eq!(values(&records[0], "cn"), ["Liddell, Alice"]);
    assert_eq!(values(&records[1], "cn"), ["Bob \"The Builder\""]);
    assert_eq!(values(&records[1], "title"), ["two\nlines"]);
    // Each origin is the line where the row starts; bob's row spans lines 3 and 4.
    let origins: Vec<_> = records.iter().map(|r| r.origin.clone()).collect();
    assert_eq!(
        origins,
        [
            origin_line(&path, 2),
            origin_line(&path, 3),
            origin_line(&path, 5)
        ]
    );
}

#[test]
fn csv_header_names_are_case_insensitive_and_a_bom_is_dropped() {
    let mut bytes = "\u{feff}UID,CN,Mail\r\nalice,Alice,alice@example.com\r\n"
        .as_bytes()
        .to_vec();
    bytes.extend_from_slice(b"bob,Bob,bob@example.com\r\n");
    let (records, _) = read_csv_bytes(&bytes, b',');
    let records = records.expect("valid CSV");
    assert_eq!(values(&records[0], "uid"), ["alice"]);
    assert_eq!(values(&records[1], "mail"), ["bob@example.com"]);
    assert_eq!(
        records[0].attrs.keys().collect::<Vec<_>>(),
        ["cn", "mail", "uid"]
    );
}

#[test]
fn csv_semicolon_and_tab_delimiters() {
    let (records, _) = read_csv(
        "uid;cn;mail\nalice;Liddell, Alice;alice@example.com\n",
        b';',
    );
    let records = records.expect("semicolon CSV");
    assert_eq!(values(&records[0], "cn"), ["Liddell, Alice"]);

    let (records, _) = read_csv(
        "uid\tcn\tmail\nalice\tAlice; Liddell\talice@example.com\n",
        b'\t',
    );
    let records = records.expect("tab-separated");
    assert_eq!(values(&records[0], "cn"), ["Alice; Liddell"]);
    assert_eq!(values(&records[0], "mail"), ["alice@example.com"]);
}

#[test]
fn csv_repeated_column_is_multi_valued_and_empty_cells_are_empty_values() {
    let text = "uid,telephoneNumber,nickName,TelephoneNumber\n\
                alice,+1 555 0100,,+1 555 0199\n\
                bob,,Bobby,\n";
    let (records, _) = read_csv(text, b',');
    let records = records.expect("valid CSV");
    assert_eq!(
        values(&records[0], "telephonenumber"),
        ["+1 555 0100", "+1 555 0199"]
    );
    // An empty cell is an empty value, so that an alias mapped from it can clear the field.
    assert_eq!(values(&records[0], "nickname"), [""]);
    assert_eq!(values(&records[1], "telephonenumber"), ["", ""]);
    assert_eq!(values(&records[1], "nickname"), ["Bobby"]);
}

#[test]
fn csv_keeps_only_the_attributes_asked_for() {
    let (_dir, path) = file("people.csv", b"uid,cn,secretNotes\nalice,Alice,x\n");
    let source = CsvFile::new(CsvSource {
        path: spanned(path),
        delimiter: b',',
    });
    let records = read(source, &["uid", "cn"]).expect("valid CSV");
    assert_eq!(records[0].attrs.keys().collect::<Vec<_>>(), ["cn", "uid"]);
}

#[test]
fn csv_not_utf8_names_the_file_and_line() {
    let (result, path) = read_csv_bytes(b"uid,cn\nalice,Alice\nzoe,Zo\xeb\n", b',');
    let (file, line, message) = file_error(result);
    assert_eq!(file, path.display().to_string());
    assert_eq!(line, Some(3));
    assert!(message.contains("UTF-8"), "{message}");
}

#[test]
fn csv_row_with_the_wrong_number_of_fields_names_its_line() {
    let (result, path) = read_csv("uid,cn\nalice,Alice\nbob,Builder, Bob\n", b',');
    let error = result.as_ref().map(|_| ()).unwrap_err().to_string();
    let (_, line, message) = file_error(result);
    assert_eq!(line, Some(3));
    assert!(
        message.starts_with("3 fields where the header row has 2"),
        "{message}"
    );
    assert_eq!(
        error,
        format!("{}, line 3: {message}", path.display()),
        "the error names the file and the line"
    );
}

#[test]
fn csv_missing_file_and_empty_file() {
    let source = CsvFile::new(CsvSource {
        path: spanned(PathBuf::from("/nonexistent/people.csv")),
        delimiter: b',',
    });
    let (file, line, message) = file_error(read(source, &[]));
    assert_eq!((file.as_str(), line), ("/nonexistent/people.csv", None));
    assert!(message.starts_with("cannot open"), "{message}");

    let (result, _) = read_csv("", b',');
    let (_, line, message) = file_error(result);
    assert_eq!(line, Some(1));
    assert!(message.contains("header"), "{message}");
}

#[test]
fn csv_with_a_header_only_has_no_records() {
    let (records, _) = read_csv("uid,cn\n", b',');
    assert_eq!(records.expect("valid CSV"), []);
}

// ---- LDIF ----

/// Zoë's name and DN in base64, an AD objectGUID, and a binary photo.
const LDIF: &str = "version: 1

# An export of ou=People: a comment,
  folded onto a second line.
dn: uid=alice,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
  Liddell
mail: alice@example.com
telephoneNumber: +1 555 0100
telephoneNumber: +1 555 0101
description:\x20
objectGUID:: 5gyLLTKqMU+m6AobLD1OXw==

# entry 2
dn:: dWlkPXpvw6ssb3U9UGVvcGxlLGRjPWV4YW1wbGUsZGM9Y29t
uid: zoe
cn:: Wm/DqyBEdXJhbmQ=
jpegPhoto:: /9gAEA==
";

#[test]
fn ldif_entries_with_base64_folding_comments_and_several_values() {
    let (records, _) = read_ldif(LDIF);
    let records = records.expect("valid LDIF");
    assert_eq!(records.len(), 2);
    let alice = &records[0];
    assert_eq!(alice.origin, "uid=alice,ou=People,dc=example,dc=com");
    assert_eq!(values(alice, "cn"), ["Alice Liddell"]);
    assert_eq!(
        values(alice, "telephonenumber"),
        ["+1 555 0100", "+1 555 0101"]
    );
    assert_eq!(values(alice, "description"), [""]);
    assert_eq!(
        values(alice, "objectguid"),
        ["2d8b0ce6-aa32-4f31-a6e8-0a1b2c3d4e5f"],
        "rendered as AD tools print it, as the LDAP source does"
    );
    let zoe = &records[1];
    assert_eq!(zoe.origin, "uid=zoë,ou=People,dc=example,dc=com");
    assert_eq!(values(zoe, "cn"), ["Zoë Durand"]);
    assert_eq!(values(zoe, "jpegphoto"), ["ffd80010"], "binary as hex");
}

#[test]
fn ldif_keeps_only_the_attributes_asked_for() {
    let (_dir, path) = file("export.ldif", LDIF.as_bytes());
    let source = LdifFile::new(LdifSource {
        path: spanned(path),
    });
    let records = read(source, &["uid", "objectguid"]).expect("valid LDIF");
    assert_eq!(
        records[0].attrs.keys().collect::<Vec<_>>(),
        ["objectguid", "uid"]
    );
    assert_eq!(records[1].attrs.keys().collect::<Vec<_>>(), ["uid"]);
}

#[test]
fn ldif_record_without_a_dn_names_its_line() {
    let text = "dn: uid=alice,dc=example,dc=com\nuid: alice\n\n# bob\nuid: bob\ncn: Bob\n";
    let (result, path) = read_ldif(text);
    let shown = result.as_ref().map(|_| ()).unwrap_err().to_string();
    let (file, line, message) = file_error(result);
    assert_eq!(file, path.display().to_string());
    assert_eq!(line, Some(5));
    assert!(message.contains("without a dn"), "{message}");
    assert!(shown.contains(", line 5: "), "{shown}");
}

#[test]
fn ldif_url_values_are_refused_clearly() {
    let text = "dn: uid=alice,dc=example,dc=com\nuid: alice\njpegPhoto:< file:///etc/passwd\n";
    let (result, _) = read_ldif(text);
    let (_, line, message) = file_error(result);
    assert_eq!(line, Some(3));
    assert!(message.contains("`jpegPhoto:<`"), "{message}");
    assert!(message.contains("does not fetch"), "{message}");
}

#[test]
fn ldif_malformed_lines_name_their_line() {
    let cases = [
        (
            "dn: cn=a\nthis line has no colon\n",
            2,
            "expected `attribute: value`",
        ),
        ("dn: cn=a\ncn:: not*base64\n", 2, "not valid base64"),
        ("dn: cn=a\ncn: a\ndn: cn=b\n", 3, "a second dn"),
        (
            "dn: cn=a\n\n cn: folded after a blank line\n",
            3,
            "continuation",
        ),
        ("dn: cn=a\nchangetype: delete\n", 2, "change record"),
        ("dn: cn=a\nbad name: x\n", 2, "not an attribute name"),
    ];
    for (text, want_line, want) in cases {
        let (result, _) = read_ldif(text);
        let (_, line, message) = file_error(result);
        assert_eq!(line, Some(want_line), "{text:?}: {message}");
        assert!(message.contains(want), "{text:?}: {message}");
    }
}

#[test]
fn ldif_not_utf8_names_its_line() {
    let (_dir, path) = file("export.ldif", b"dn: cn=a\ncn: Zo\xeb\n");
    let source = LdifFile::new(LdifSource {
        path: spanned(path),
    });
    let (_, line, message) = file_error(read(source, &[]));
    assert_eq!(line, Some(2));
    assert!(message.contains("UTF-8"), "{message}");
}

#[test]
fn csv_cut_short_or_with_a_nul_byte_is_refused_with_the_line() {
    // Each case: the file, the line the error names, and what it says.
    let cases: &[(&[u8], u64, &str)] = &[
        (
            b"uid,mail\nalice,alice@example.com\nbob,bob@exa",
            3,
            "no line end",
        ),
        (b"uid,mail\r\nalice,alice@example.com", 2, "no line end"),
        (b"uid,mail", 1, "no line end"),
        (b"uid,mail\nalice,al\0ice@example.com\n", 2, "NUL byte"),
        (b"uid,mail\nalice,\"a\nb\"\nbob,b\0\n", 4, "NUL byte"),
        (b"ui\0d,mail\n", 1, "NUL byte"),
    ];
    for (bytes, line, want) in cases {
        let (result, path) = read_csv_bytes(bytes, b',');
        let (file, at, message) = file_error(result);
        assert_eq!(file, path.display().to_string());
        assert_eq!(
            at,
            Some(*line),
            "{:?}: {message}",
            String::from_utf8_lossy(bytes)
        );
        assert!(message.contains(want), "{message}");
    }
    let (result, _) = read_csv("uid,mail\r\nalice,alice@example.com\r\n", b',');
    assert_eq!(result.expect("a whole file").len(), 1);
}

#[test]
fn ldif_cut_short_or_with_a_nul_byte_is_refused_with_the_line() {
    let (result, path) = read_ldif("dn: uid=alice,dc=x\nuid: alice\n\ndn: uid=bob,dc=x\nuid: b");
    let (file, line, message) = file_error(result);
    assert_eq!(file, path.display().to_string());
    assert_eq!(line, Some(5));
    assert!(message.contains("cut short"), "{message}");
    let (result, _) = read_ldif("dn: uid=alice,dc=x\nmail: alice\0@example.com\n");
    let (_, line, message) = file_error(result);
    assert_eq!(
        (line, message.contains("NUL byte")),
        (Some(2), true),
        "{message}"
    );
}
