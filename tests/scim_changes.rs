//! Listing SCIM users by change (`meta.lastModified gt`) against providers that cannot: the
//! local double (`support/scim_double.rs`), which takes only `eq` filters as AWS and Entra
//! do, or ignores filters. Each case must say why it cannot and leave the listing whole to
//! the caller; a refusal is remembered for the run. (The honoured case runs against
//! scim2-server in `e2e_scim_changes.rs`.)

mod support;

use chrono::{Duration, Utc};
use roster::config::{HttpOptions, ScimCompatibility, ScimProvider, ScimTarget, Spanned};
use roster::secret::SecretRef;
use roster::target::scim::ScimService;
use roster::target::{ChangedUsers, Target};
use serde_json::json;
use support::scim_double::{Filters, Quirks, ScimDouble, TOKEN, spc};

fn service(double: &ScimDouble, provider: ScimProvider) -> (ScimService, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let config = ScimTarget {
        url: Spanned::new(double.url.clone(), (0, 0).into()),
        token: Spanned::new(SecretRef::File(token_file), (0, 0).into()),
        http: HttpOptions {
            timeout_secs: 10,
            ..HttpOptions::default()
        },
        concurrency: 1,
        rate_limit: None,
        page_size: Some(2),
        provider,
        compatibility: ScimCompatibility::default(),
    };
    (ScimService::new(&config, Vec::new()).expect("service"), dir)
}

fn seeded(quirks: Quirks) -> ScimDouble {
    let double = ScimDouble::start(quirks);
    for name in ["ann", "ben", "cy"] {
        double.insert(
            "Users",
            json!({"userName": name, "externalId": format!("k-{name}"), "active": true}),
        );
    }
    double
}

/// The `/Users` listings the double was asked for: (filtered by change, any other).
fn listings(double: &ScimDouble) -> (usize, usize) {
    let users: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/Users"))
        .collect();
    let by_change = users
        .iter()
        .filter(|r| {
            r.param("filter")
                .is_some_and(|f| f.contains("lastModified"))
        })
        .count();
    (by_change, users.len() - by_change)
}

fn cannot(answer: ChangedUsers) -> String {
    match answer {
        ChangedUsers::Cannot(why) => why,
        listed => panic!("expected the provider to be unable, got {listed:?}"),
    }
}

#[test]
fn a_refused_filter_is_remembered_for_the_run_and_nothing_is_handed_over() {
    let double = seeded(Quirks::default());
    let (scim, _dir) = service(&double, ScimProvider::Generic);
    let since = Utc::now() - Duration::hours(1);
    let mut handed = Vec::new();
    let why = cannot(
        scim.list_users_changed(since, &mut |u| handed.push(u))
            .expect("a refusal is no error"),
    );
    assert!(why.contains("refused the filter"), "{why}");
    assert!(why.contains("invalidFilter"), "{why}");
    assert!(handed.is_empty());
    assert_eq!(listings(&double), (1, 1), "the total, then the filter");

    let again = cannot(
        scim.list_users_changed(since, &mut |u| handed.push(u))
            .expect("no error"),
    );
    assert_eq!(again, why);
    assert_eq!(
        listings(&double),
        (1, 1),
        "the second listing of the run asks nothing"
    );
    // The whole listing the caller falls back to still works.
    let mut all = 0;
    assert_eq!(scim.list_users(&mut |_| all += 1).expect("listing"), 3);
    assert_eq!(all, 3);
}

#[test]
fn an_ignored_filter_is_caught_by_the_answers_without_last_modified() {
    let double = seeded(Quirks {
        filters: Filters::Ignored,
        ..Quirks::default()
    });
    let (scim, _dir) = service(&double, ScimProvider::Generic);
    let why = cannot(
        scim.list_users_changed(Utc::now(), &mut |_| {})
            .expect("no error"),
    );
    assert!(why.contains("carries no meta.lastModified"), "{why}");
}

#[test]
fn a_preset_or_a_service_provider_config_that_says_no_costs_no_listing() {
    let double = seeded(Quirks::default());
    let (scim, _dir) = service(&double, ScimProvider::Aws);
    let why = cannot(
        scim.list_users_changed(Utc::now(), &mut |_| {})
            .expect("no error"),
    );
    assert!(why.contains("preset"), "{why}");
    assert_eq!(listings(&double), (0, 0));

    let double = seeded(Quirks {
        spc: Some(spc(false, true)),
        ..Quirks::default()
    });
    let (scim, _dir) = service(&double, ScimProvider::Generic);
    let why = cannot(
        scim.list_users_changed(Utc::now(), &mut |_| {})
            .expect("no error"),
    );
    assert!(why.contains("filter.supported is false"), "{why}");
    assert_eq!(listings(&double), (0, 0));
}
