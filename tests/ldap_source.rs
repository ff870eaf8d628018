//! The LDAP source against a real slapd: plain, LDAPS and StartTLS, certificates refused and
//! accepted, binds, paging, several base DNs, binary attributes, reads that fail part-way, and
//! referrals between two servers.

mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use roster::config::{ActiveDirectory, DisabledAccounts, LdapSource, Spanned};
use roster::model::SourceRecord;
use roster::secret::SecretRef;
use roster::source::ldap::LdapDirectory;
use roster::source::{Source, SourceError};
use support::slapd::{Slapd, closed_port, people_ldif, person, person_dn, person_in};

const PEOPLE: &str = "ou=People,dc=example,dc=com";
const CONTRACTORS: &str = "ou=Contractors,dc=example,dc=com";
const ATTRS: &[&str] = &["uid", "cn", "mail", "telephonenumber", "entryuuid"];

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, (0, 0).into())
}

/// Anonymous, verified TLS, all inetOrgPersons under ou=People.
fn source(url: &str) -> LdapSource {
    LdapSource {
        url: spanned(url.to_string()),
        starttls: false,
        ca_file: None,
        bind_dn: None,
        bind_password: None,
        base_dns: vec![spanned(PEOPLE.to_string())],
        filter: spanned("(objectClass=inetOrgPerson)".to_string()),
        page_size: 500,
        timeout_secs: 10,
        active_directory: None,
        follow_referrals: false,
    }
}

/// Bound as the server's admin, the password read from a file.
fn admin_source(slapd: &Slapd, url: &str) -> LdapSource {
    LdapSource {
        bind_dn: Some(spanned(slapd.admin_dn.clone())),
        bind_password: Some(spanned(SecretRef::File(slapd.admin_password_file.clone()))),
        ..source(url)
    }
}

fn with_ca(config: LdapSource, ca_file: &Path) -> LdapSource {
    LdapSource {
        ca_file: Some(spanned(ca_file.to_path_buf())),
        ..config
    }
}

fn read_with(config: LdapSource, attrs: &[&str]) -> Result<Vec<SourceRecord>, SourceError> {
    let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
    let mut records = Vec::new();
    let count = LdapDirectory::new(config).read_users(&attrs, &mut |r| records.push(r))?;
    assert_eq!(
        count,
        records.len() as u64,
        "the count returned is the number of records handed over"
    );
    Ok(records)
}

fn read(config: LdapSource) -> Result<Vec<SourceRecord>, SourceError> {
    read_with(config, ATTRS)
}

fn origins(records: &[SourceRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.origin.clone()).collect()
}

fn find<'r>(records: &'r [SourceRecord], uid: &str) -> &'r SourceRecord {
    records
        .iter()
        .find(|r| r.first("uid") == Some(uid))
        .unwrap_or_else(|| panic!("no record for {uid}"))
}

fn is_uuid(value: &str) -> bool {
    value.len() == 36
        && value
            .chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'))
}

#[test]
fn reads_people_with_their_attributes_over_plain_ldap() {
    let slapd = Slapd::start_with_ldif(&format!(
        "{}{}",
        person(
            "alice",
            "Alice Liddell",
            Some("alice@example.com"),
            &["+1 555 0100", "+1 555 0101"]
        ),
        person("bob", "Bob Builder", Some("bob@example.com"), &[]),
    ));
    // Added to the running server rather than loaded: both ways must carry an entryUUID.
    slapd.add(&person("carol", "Carol Danvers", None, &["+1 555 0199"]));

    let records = read(admin_source(&slapd, &slapd.url)).expect("read as admin");
    assert_eq!(
        origins(&records),
        ["alice", "bob", "carol"]
            .iter()
            .map(|u| person_dn(u))
            .collect()
    );

    let alice = find(&records, "alice");
    assert_eq!(alice.origin, "uid=alice,ou=People,dc=example,dc=com");
    assert_eq!(alice.values("cn"), ["Alice Liddell"]);
    assert_eq!(alice.values("mail"), ["alice@example.com"]);
    assert_eq!(
        alice.values("telephoneNumber"),
        ["+1 555 0100", "+1 555 0101"]
    );
    assert!(
        alice.attrs.keys().all(|name| *name == name.to_lowercase()),
        "names are lowercase: {alice:?}"
    );
    // Only what was asked for: objectClass and sn were not requested.
    assert_eq!(
        alice.attrs.keys().collect::<Vec<_>>(),
        ["cn", "entryuuid", "mail", "telephonenumber", "uid"]
    );
    let carol = find(&records, "carol");
    assert!(carol.values("mail").is_empty());
    for record in &records {
        let uuid = record.first("entryUUID").unwrap_or_default();
        assert!(
            is_uuid(uuid),
            "{} has no entryUUID: {record:?}",
            record.origin
        );
    }

    // Anonymous reads see the same entries (the default slapd ACL lets anyone read).
    let anonymous = read(source(&slapd.url)).expect("anonymous read");
    assert_eq!(origins(&anonymous), origins(&records));
}

#[test]
fn reads_every_base_dn_and_the_filter_restricts() {
    let slapd = Slapd::start_with_ldif(&format!(
        "{}{}{}",
        person("alice", "Alice Liddell", Some("alice@example.com"), &[]),
        person("bob", "Bob Builder", None, &[]),
        person_in(
            "Contractors",
            "dave",
            "Dave Lister",
            Some("dave@contractor.example"),
            &[]
        ),
    ));
    let both = LdapSource {
        base_dns: vec![
            spanned(PEOPLE.to_string()),
            spanned(CONTRACTORS.to_string()),
        ],
        ..admin_source(&slapd, &slapd.url)
    };

    let records = read(both.clone()).expect("read both bases");
    assert_eq!(
        origins(&records),
        BTreeSet::from([
            person_dn("alice"),
            person_dn("bob"),
            format!("uid=dave,{CONTRACTORS}")
        ])
    );

    let filtered = LdapSource {
        filter: spanned("(&(objectClass=inetOrgPerson)(mail=*))".to_string()),
        ..both
    };
    let records = read(filtered).expect("filtered read");
    assert_eq!(
        origins(&records),
        BTreeSet::from([person_dn("alice"), format!("uid=dave,{CONTRACTORS}")])
    );
}

#[test]
fn pages_through_thousands_of_entries_exactly_once() {
    let slapd = Slapd::start_with_ldif(&people_ldif(2_500));

    let searches_before = slapd.searches();
    let started = Instant::now();
    let records = read(LdapSource {
        page_size: 1000,
        ..admin_source(&slapd, &slapd.url)
    })
    .expect("paged read");
    eprintln!("2,500 entries in pages of 1000: {:?}", started.elapsed());
    assert_eq!(records.len(), 2_500);
    assert_eq!(origins(&records).len(), 2_500, "every entry exactly once");
    assert_eq!(
        slapd.searches() - searches_before,
        3,
        "three pages of at most 1000"
    );

    // Small pages: uid user000100 to user000199 are 100 entries, 15 pages of 7.
    let searches_before = slapd.searches();
    let small_pages = LdapSource {
        page_size: 7,
        filter: spanned("(uid=user0001*)".to_string()),
        ..admin_source(&slapd, &slapd.url)
    };
    let records = read(small_pages).expect("read in pages of 7");
    assert_eq!(records.len(), 100);
    assert_eq!(origins(&records).len(), 100, "every entry exactly once");
    assert_eq!(slapd.searches() - searches_before, 15);
}

#[test]
fn ldaps_and_starttls_verify_the_server_against_ca_file() {
    let slapd = Slapd::start_with_ldif(&person("alice", "Alice Liddell", None, &[]));

    let ldaps = with_ca(admin_source(&slapd, &slapd.ldaps_url), &slapd.ca_file);
    assert_eq!(read(ldaps).expect("LDAPS with ca-file").len(), 1);

    let starttls = LdapSource {
        starttls: true,
        ..with_ca(admin_source(&slapd, &slapd.url), &slapd.ca_file)
    };
    assert_eq!(read(starttls).expect("StartTLS with ca-file").len(), 1);
}

#[test]
fn refuses_a_certificate_no_trusted_ca_signed() {
    let slapd = Slapd::start();
    let expect_tls_error = |config: LdapSource, case: &str| match read(config) {
        Err(SourceError::Tls { message, .. }) => {
            assert!(
                message.contains("certificate is not trusted (UnknownIssuer)"),
                "{case}: {message}"
            );
            assert!(message.contains("set ca-file"), "{case}: {message}");
        }
        other => panic!("{case}: expected a TLS error, got {other:?}"),
    };

    expect_tls_error(
        with_ca(admin_source(&slapd, &slapd.ldaps_url), &slapd.other_ca_file),
        "LDAPS, other CA",
    );
    let starttls = LdapSource {
        starttls: true,
        ..admin_source(&slapd, &slapd.url)
    };
    expect_tls_error(
        with_ca(starttls, &slapd.other_ca_file),
        "StartTLS, other CA",
    );
    // The system roots do not know the test CA either.
    expect_tls_error(
        admin_source(&slapd, &slapd.ldaps_url),
        "LDAPS, system roots",
    );
}

#[test]
fn a_refused_bind_names_invalid_credentials_and_never_the_password() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let wrong_password = "wrong-Pa55word-q8Zr";
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{wrong_password}\n")).expect("write password file");

    let config = LdapSource {
        bind_password: Some(spanned(SecretRef::File(password_file))),
        ..admin_source(&slapd, &slapd.url)
    };
    match read(config) {
        Err(error @ SourceError::Bind { .. }) => {
            let shown = format!("{error} {error:?}");
            assert!(shown.contains("invalid credentials"), "{shown}");
            assert!(
                !shown.contains(wrong_password),
                "the password leaked: {shown}"
            );
        }
        other => panic!("expected a bind error, got {other:?}"),
    }

    let missing = "ROSTER_TEST_LDAP_PASSWORD_THAT_IS_NEVER_SET";
    let config = LdapSource {
        bind_password: Some(spanned(SecretRef::Env(missing.to_string()))),
        ..admin_source(&slapd, &slapd.url)
    };
    match read(config) {
        Err(error @ SourceError::Secret(_)) => {
            assert!(error.to_string().contains(missing), "{error}")
        }
        other => panic!("expected a secret error, got {other:?}"),
    }
}

#[test]
fn an_unreachable_server_is_a_connect_error() {
    let started = Instant::now();
    let config = LdapSource {
        timeout_secs: 5,
        ..source(&format!("ldap://127.0.0.1:{}", closed_port()))
    };
    match read(config) {
        Err(SourceError::Connect { message, .. }) => {
            assert!(message.contains("refused"), "{message}")
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_server_that_never_answers_times_out() {
    // The kernel accepts the TCP connection into the backlog; nobody ever speaks TLS on it.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let started = Instant::now();
    let config = LdapSource {
        timeout_secs: 1,
        ..source(&format!("ldaps://127.0.0.1:{port}"))
    };
    match read(config) {
        Err(SourceError::Connect { message, .. }) => {
            assert!(message.contains("no answer within 1 s"), "{message}")
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_search_that_fails_is_reported_as_incomplete() {
    let mut slapd = Slapd::start_with_ldif(&people_ldif(300));

    // The first base reads fine; the second does not exist. What was read is not enough.
    let config = LdapSource {
        base_dns: vec![
            spanned(PEOPLE.to_string()),
            spanned("ou=Nobody,dc=example,dc=com".to_string()),
        ],
        ..admin_source(&slapd, &slapd.url)
    };
    match read(config) {
        Err(SourceError::Search {
            base,
            read,
            message,
            ..
        }) => {
            assert_eq!(base, "ou=Nobody,dc=example,dc=com");
            assert_eq!(read, 0);
            assert!(message.contains("noSuchObject"), "{message}");
        }
        other => panic!("expected a search error, got {other:?}"),
    }

    // The server dies while the sink is still taking records.
    let config = LdapSource {
        page_size: 10,
        ..admin_source(&slapd, &slapd.url)
    };
    let attrs = vec!["uid".to_string()];
    let mut received = 0;
    let result = LdapDirectory::new(config).read_users(&attrs, &mut |_| {
        received += 1;
        if received == 5 {
            slapd.kill();
        }
    });
    match result {
        Err(SourceError::Search { read, message, .. }) => {
            assert!((5..300).contains(&read), "read {read}");
            assert!(message.contains("connection was lost"), "{message}");
        }
        other => panic!("expected a search error, got {other:?}"),
    }
}

#[test]
fn binary_attributes_become_guid_strings_and_hex() {
    let slapd = Slapd::start();
    slapd.add(
        "dn: uid=ada,ou=People,dc=example,dc=com\n\
         objectClass: inetOrgPerson\n\
         objectClass: rosterTestAD\n\
         uid: ada\ncn: Ada Lovelace\nsn: Lovelace\n\
         objectGUID:: 5gyLLTKqMU+m6AobLD1OXw==\n\
         jpegPhoto:: /9j/4AAQSkY=\n\n\
         dn: uid=ascii,ou=People,dc=example,dc=com\n\
         objectClass: inetOrgPerson\n\
         objectClass: rosterTestAD\n\
         uid: ascii\ncn: Plain Bytes\nsn: Bytes\n\
         objectGUID: ABCDEFGHIJKLMNOP\n\n",
    );
    let records = read_with(
        admin_source(&slapd, &slapd.url),
        &["uid", "objectGUID", "jpegPhoto"],
    )
    .expect("read");
    let ada = find(&records, "ada");
    assert_eq!(
        ada.values("objectguid"),
        ["2d8b0ce6-aa32-4f31-a6e8-0a1b2c3d4e5f"]
    );
    assert_eq!(ada.values("jpegphoto"), ["ffd8ffe000104a46"]);
    // 16 bytes that happen to be UTF-8 reach ldap3's text side; still a GUID.
    assert_eq!(
        find(&records, "ascii").values("objectguid"),
        ["44434241-4645-4847-494a-4b4c4d4e4f50"]
    );
}

/// An inetOrgPerson with the Active Directory account attributes (the test schema's stand-ins).
fn ad_person(uid: &str, uac: Option<u32>, expires: Option<i64>) -> String {
    // slapadd wants the values of an attribute together: the class goes next to the other.
    let mut ldif = person(uid, &format!("{uid} Test"), None, &[]).replacen(
        "objectClass: inetOrgPerson\n",
        "objectClass: inetOrgPerson\nobjectClass: rosterTestAD\n",
        1,
    );
    ldif.pop();
    if let Some(uac) = uac {
        ldif.push_str(&format!("userAccountControl: {uac}\n"));
    }
    if let Some(expires) = expires {
        ldif.push_str(&format!("accountExpires: {expires}\n"));
    }
    ldif.push('\n');
    ldif
}

/// `accountExpires` for a Unix time: 100-ns ticks since 1601-01-01.
fn filetime(unix: i64) -> i64 {
    (unix + 11_644_473_600) * 10_000_000
}

#[test]
fn active_directory_leaves_out_disabled_and_expired_accounts() {
    let now = chrono::Utc::now().timestamp();
    let slapd = Slapd::start_with_ldif(
        &[
            ad_person("alice", Some(512), Some(0)),
            ad_person("bob", Some(514), None),
            ad_person("carol", Some(512), Some(filetime(now - 86_400))),
            ad_person("dave", Some(66_048), Some(filetime(now + 86_400))),
            ad_person("erin", Some(512), Some(i64::MAX)),
            ad_person("frank", Some(66_050), None),
            person("grace", "Grace Hopper", None, &[]),
        ]
        .concat(),
    );
    let uids = |records: &[SourceRecord]| -> BTreeSet<String> {
        records
            .iter()
            .filter_map(|r| r.first("uid").map(str::to_string))
            .collect()
    };

    let plain = read(admin_source(&slapd, &slapd.url)).expect("plain LDAP read");
    assert_eq!(
        plain.len(),
        7,
        "without active-directory every account is read"
    );

    let ad = LdapSource {
        active_directory: Some(ActiveDirectory {
            disabled: DisabledAccounts::Skip,
        }),
        ..admin_source(&slapd, &slapd.url)
    };
    // ATTRS does not name userAccountControl or accountExpires: the source asks for them.
    let records = read(ad.clone()).expect("AD read");
    assert_eq!(
        uids(&records),
        BTreeSet::from(["alice", "dave", "erin", "grace"].map(String::from)),
        "bob and frank are disabled, carol expired yesterday"
    );

    let marked = read(LdapSource {
        active_directory: Some(ActiveDirectory {
            disabled: DisabledAccounts::Inactive,
        }),
        ..ad
    })
    .expect("AD read keeping disabled accounts");
    let inactive: BTreeSet<String> = marked
        .iter()
        .filter(|r| r.out_of_service)
        .filter_map(|r| r.first("uid").map(str::to_string))
        .collect();
    assert_eq!(
        inactive,
        BTreeSet::from(["bob", "carol", "frank"].map(String::from))
    );
    assert_eq!(marked.len(), 7);
}

/// A `referral` entry `ou=<ou>` under ou=People pointing at `url`, as LDIF.
fn referral(ou: &str, url: &str) -> String {
    format!(
        "dn: ou={ou},{PEOPLE}\nobjectClass: referral\nobjectClass: extensibleObject\n\
         ou: {ou}\nref: {url}\n\n"
    )
}

fn with_referrals(config: LdapSource, follow_referrals: bool) -> LdapSource {
    LdapSource {
        follow_referrals,
        // Referrals arrive between pages as well as within them.
        page_size: 1,
        ..config
    }
}

#[test]
fn referrals_are_skipped_by_default_and_followed_once_each_with_follow_referrals() {
    let first = Slapd::start_with_ldif(&format!(
        "{}{}",
        person("alice", "Alice Liddell", None, &[]),
        person("bob", "Bob Builder", None, &[]),
    ));
    let second = Slapd::start_with_ldif(&format!(
        "{}{}",
        person("carol", "Carol Danvers", None, &[]),
        person("dave", "Dave Lister", None, &[]),
    ));
    first.add(&referral("Elsewhere", &format!("{}/{PEOPLE}", second.url)));
    // The second server refers back to the first: a loop, which must end.
    second.add(&referral("Back", &format!("{}/{PEOPLE}", first.url)));
    let at_first = admin_source(&first, &first.url);

    let records = read(with_referrals(at_first.clone(), false)).expect("referrals skipped");
    assert_eq!(
        origins(&records),
        BTreeSet::from([person_dn("alice"), person_dn("bob")])
    );

    // StartTLS with the CA: the referral's ldap:// connection is encrypted the same way.
    let encrypted = LdapSource {
        starttls: true,
        ..with_ca(at_first, &first.ca_file)
    };
    for config in [
        encrypted.clone(),
        LdapSource {
            starttls: false,
            ..encrypted
        },
    ] {
        let records = read(with_referrals(config, true)).expect("referrals followed");
        assert_eq!(records.len(), 4, "every entry exactly once: {records:?}");
        assert_eq!(
            origins(&records),
            ["alice", "bob", "carol", "dave"].map(person_dn).into()
        );
    }
    assert!(
        second.log().contains("oid=1.3.6.1.4.1.1466.20037"),
        "the referred server was asked for StartTLS"
    );
}

#[test]
fn a_base_dn_that_is_a_referral_is_read_there_only_with_follow_referrals() {
    let second = Slapd::start_with_ldif(&person("carol", "Carol Danvers", None, &[]));
    let first = Slapd::start_with_ldif(&format!(
        "{}{}",
        person("alice", "Alice Liddell", None, &[]),
        referral("Elsewhere", &format!("{}/{PEOPLE}", second.url)),
    ));
    let at_referral = LdapSource {
        base_dns: vec![spanned(format!("ou=Elsewhere,{PEOPLE}"))],
        ..admin_source(&first, &first.url)
    };
    match read(with_referrals(at_referral.clone(), false)) {
        Err(SourceError::Search { message, .. }) => {
            assert!(message.contains("referral (LDAP result 10)"), "{message}");
            assert!(message.contains(&second.url), "{message}");
            assert!(message.contains("follow-referrals #true"), "{message}");
        }
        other => panic!("expected a search error, got {other:?}"),
    }
    let records = read(with_referrals(at_referral, true)).expect("base referral followed");
    assert_eq!(origins(&records), BTreeSet::from([person_dn("carol")]));
}

#[test]
fn a_referral_that_cannot_be_followed_fails_the_read_naming_it() {
    let gone = format!(
        "ldap://127.0.0.1:{}/ou=People,dc=other,dc=com",
        closed_port()
    );
    let slapd = Slapd::start_with_ldif(&format!(
        "{}{}{}",
        person("alice", "Alice Liddell", None, &[]),
        referral("Elsewhere", &gone),
        person("bob", "Bob Builder", None, &[]),
    ));
    // The server does send a search continuation reference for it.
    let out = std::process::Command::new("ldapsearch")
        .args(["-x", "-LLL", "-H", &slapd.url, "-D", &slapd.admin_dn, "-w"])
        .arg(&slapd.admin_password)
        .args(["-b", PEOPLE, "(objectClass=inetOrgPerson)", "uid"])
        .output()
        .expect("ldapsearch");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(&gone), "{shown}");

    let config = admin_source(&slapd, &slapd.url);
    let records = read(with_referrals(config.clone(), false)).expect("a read past a referral");
    assert_eq!(
        origins(&records),
        BTreeSet::from([person_dn("alice"), person_dn("bob")])
    );

    match read(with_referrals(config, true)) {
        Err(error @ SourceError::Referral { .. }) => {
            let shown = error.to_string();
            assert!(shown.contains(&gone), "{shown}");
            assert!(shown.contains("read is incomplete"), "{shown}");
            assert!(shown.contains("connection refused"), "{shown}");
        }
        other => panic!("expected a referral error, got {other:?}"),
    }
}

#[test]
fn a_certificate_without_any_subject_alt_name_is_said_to_have_none() {
    let slapd = Slapd::start_without_subject_alt_name();
    match read(with_ca(
        admin_source(&slapd, &slapd.ldaps_url),
        &slapd.ca_file,
    )) {
        Err(SourceError::Tls { message, .. }) => {
            assert!(message.contains("no subjectAltName at all"), "{message}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn an_ipv6_literal_url_verifies_against_an_ip_subject_alt_name() {
    let slapd = Slapd::start_on_ipv6();
    assert!(
        slapd.ldaps_url.starts_with("ldaps://[::1]:"),
        "{}",
        slapd.ldaps_url
    );
    let ldaps = with_ca(admin_source(&slapd, &slapd.ldaps_url), &slapd.ca_file);
    read(ldaps).expect("LDAPS to [::1], verified against IP:::1");
    let starttls = LdapSource {
        starttls: true,
        ..with_ca(admin_source(&slapd, &slapd.url), &slapd.ca_file)
    };
    read(starttls).expect("StartTLS to [::1]");
    // Verified, not skipped: a CA that did not sign the certificate is still refused.
    match read(with_ca(
        admin_source(&slapd, &slapd.ldaps_url),
        &slapd.other_ca_file,
    )) {
        Err(SourceError::Tls { message, .. }) => {
            assert!(message.contains("UnknownIssuer"), "{message}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn an_ldaps_url_on_a_port_that_resets_the_handshake_asks_whether_it_serves_tls() {
    // A plain service that answers a TLS ClientHello by resetting the connection: it closes
    // the socket with the hello unread, which makes the kernel send RST.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            std::thread::sleep(Duration::from_millis(200));
            drop(stream);
        }
    });
    let url = format!("ldaps://127.0.0.1:{port}");
    match read(source(&url)) {
        Err(SourceError::Tls { message, .. }) => {
            assert!(
                message.contains("reset the connection during the TLS handshake")
                    && message.contains("is this port serving TLS"),
                "{message}"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    server.join().expect("server thread");
}
