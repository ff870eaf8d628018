//! The SCIM target against providers that are not the reference server: a local double
//! (`support/scim_double.rs`) with the documented quirks of AWS IAM Identity Center, Entra
//! ID, Okta and others switched on one by one. Each test checks what the double holds
//! afterwards, not only what the service returned.

mod support;

use roster::config::{HttpOptions, ScimCompatibility, ScimProvider, ScimTarget, Spanned};
use roster::model::DesiredUser;
use roster::secret::SecretRef;
use roster::target::scim::ScimService;
use roster::target::{GroupUpdate, Target, UserUpdate};
use serde_json::json;
use support::scim_double::{Filters, Quirks, ScimDouble, TOKEN, spc};

fn service(double: &ScimDouble) -> (ScimService, tempfile::TempDir) {
    service_for(double, ScimProvider::Generic, ScimCompatibility::default())
}

fn service_for(
    double: &ScimDouble,
    provider: ScimProvider,
    compatibility: ScimCompatibility,
) -> (ScimService, tempfile::TempDir) {
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
        compatibility,
    };
    (ScimService::new(&config, Vec::new()).expect("service"), dir)
}

fn start(quirks: Quirks) -> (ScimDouble, ScimService, tempfile::TempDir) {
    let double = ScimDouble::start(quirks);
    let (scim, dir) = service(&double);
    (double, scim, dir)
}

/// A few groups, so that listings take more than one page (page size 2).
fn seed_groups(double: &ScimDouble) {
    double.insert(
        "Groups",
        json!({"displayName": "Sales", "externalId": "k-sales", "members": []}),
    );
    double.insert("Groups", json!({"displayName": "Ops", "members": []}));
    double.insert(
        "Groups",
        json!({"displayName": "Legal", "externalId": "k-legal", "members": []}),
    );
}

fn filters_sent(double: &ScimDouble) -> Vec<String> {
    double
        .requests()
        .iter()
        .filter_map(|r| r.param("filter").map(str::to_string))
        .collect()
}

/// Every filter quirk: each lookup finds what exists (by key first, then by name), proves
/// absence only by a read the provider honours, and never sends `or`.
#[test]
fn group_lookups_find_what_exists_whatever_the_filter_does() {
    for filters in [
        Filters::Honoured,
        Filters::Ignored,
        Filters::Empty,
        Filters::Refused,
    ] {
        let (double, scim, _dir) = start(Quirks {
            filters,
            ..Quirks::default()
        });
        seed_groups(&double);
        let by_key = scim.find_group("k-legal", "Renamed").expect("lookup");
        assert_eq!(
            by_key.map(|g| g.name).as_deref(),
            Some("Legal"),
            "{filters:?}"
        );
        let by_name = scim.find_group("k-ops", "OPS").expect("lookup");
        assert_eq!(
            by_name.map(|g| g.name).as_deref(),
            Some("Ops"),
            "{filters:?}"
        );
        // The key wins over the name, wherever each sits in the listing.
        let both = scim.find_group("k-legal", "Sales").expect("lookup");
        assert_eq!(
            both.map(|g| g.name).as_deref(),
            Some("Legal"),
            "{filters:?}"
        );
        assert_eq!(
            scim.find_group("k-new", "New").expect("lookup"),
            None,
            "{filters:?}"
        );
        let filters = filters_sent(&double);
        assert!(
            filters.iter().all(|f| !f.contains(" or ")),
            "only eq filters: {filters:?}"
        );
    }
}

/// The create path end to end (lookup, then create only when absent) does not make a
/// second group on a provider whose Groups filter answers nothing.
#[test]
fn an_add_after_an_empty_filter_answer_makes_no_duplicate() {
    let (double, scim, _dir) = start(Quirks {
        filters: Filters::Empty,
        ..Quirks::default()
    });
    seed_groups(&double);
    for _ in 0..2 {
        if scim
            .find_group("k-sales", "Sales")
            .expect("lookup")
            .is_none()
        {
            scim.create_group("k-sales", "Sales").expect("create");
        }
    }
    let sales = double
        .groups()
        .iter()
        .filter(|g| g["displayName"] == "Sales")
        .count();
    assert_eq!(sales, 1);
}

#[test]
fn user_lookups_do_not_trust_an_empty_filter_answer() {
    for filters in [Filters::Ignored, Filters::Empty, Filters::Refused] {
        let (double, scim, _dir) = start(Quirks {
            filters,
            ..Quirks::default()
        });
        for name in ["amy", "bea", "cid"] {
            double.insert(
                "Users",
                json!({"userName": name, "externalId": format!("k-{name}")}),
            );
        }
        let found = scim.find_user("CID").expect("lookup").expect("found");
        assert_eq!(found.username, "cid", "{filters:?}");
        assert_eq!(scim.find_user("dan").expect("lookup"), None, "{filters:?}");
    }
}

/// `/ServiceProviderConfig` is read once, and a provider that says it does not filter is
/// not sent filters at all; a provider without one is tried and checked.
#[test]
fn the_service_provider_config_is_read_once_and_obeyed() {
    let (double, scim, _dir) = start(Quirks {
        filters: Filters::Refused,
        spc: Some(spc(false, true)),
        ..Quirks::default()
    });
    seed_groups(&double);
    assert!(
        scim.find_group("k-sales", "Sales")
            .expect("lookup")
            .is_some()
    );
    assert!(scim.find_group("k-x", "X").expect("lookup").is_none());
    assert!(scim.find_user("nobody").expect("lookup").is_none());
    let requests = double.requests();
    let spc_reads = requests
        .iter()
        .filter(|r| r.path.ends_with("/ServiceProviderConfig"))
        .count();
    assert_eq!(spc_reads, 1);
    assert!(filters_sent(&double).is_empty(), "no filter sent");

    let (double, scim, _dir) = start(Quirks {
        spc: None,
        ..Quirks::default()
    });
    seed_groups(&double);
    assert!(
        scim.find_group("k-sales", "Sales")
            .expect("lookup")
            .is_some()
    );
    assert!(scim.find_group("k-x", "X").expect("lookup").is_none());
}

/// A filter proved honoured once is trusted for the rest of the run: later absent lookups
/// cost one request each, not a listing.
#[test]
fn an_honoured_filter_is_proved_once() {
    let (double, scim, _dir) = start(Quirks::default());
    seed_groups(&double);
    assert!(scim.find_group("k-a", "A").expect("lookup").is_none());
    let before = double.requests().len();
    assert!(scim.find_group("k-b", "B").expect("lookup").is_none());
    assert_eq!(
        double.requests().len() - before,
        2,
        "one eq lookup per attribute"
    );
}

#[test]
fn member_removal_falls_back_when_value_paths_are_refused() {
    let (double, scim, _dir) = start(Quirks {
        value_paths_refused: true,
        ..Quirks::default()
    });
    let id = double.insert(
        "Groups",
        json!({"displayName": "Sales", "externalId": "k", "members": [{"value": "u1"}, {"value": "u2"}]}),
    );
    scim.change_members(&id, &["u3".into()], &["u1".into()])
        .expect("member change");
    let members = |double: &ScimDouble| -> Vec<String> {
        double.get("Groups", &id).expect("group")["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter_map(|m| m["value"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(members(&double), ["u2", "u3"]);
    let before = double.requests().len();
    scim.change_members(&id, &[], &["u2".into()])
        .expect("member change");
    assert_eq!(members(&double), ["u3"]);
    assert_eq!(
        double.requests().len() - before,
        1,
        "the refusal is remembered"
    );
}

#[test]
fn patch_not_implemented_falls_back_to_put_with_if_match() {
    let (double, scim, _dir) = start(Quirks {
        patch_not_implemented: true,
        ..Quirks::default()
    });
    let user = scim
        .create_user(&DesiredUser {
            key: "k-amy".into(),
            username: "amy".into(),
            name: Some("Amy".into()),
            email: Some("amy@example.com".into()),
            phones: vec!["+1 555".into()],
            fields: Default::default(),
            active: true,
        })
        .expect("create");
    let update = UserUpdate {
        name: Some("Amy Pond".into()),
        add_phones: vec!["+1 666".into()],
        active: Some(false),
        ..UserUpdate::default()
    };
    let version = scim
        .update_user(&user.id, user.version.as_deref(), &update)
        .expect("update by PUT");
    let held = double.get("Users", &user.id).expect("user");
    assert_eq!(held["displayName"], "Amy Pond");
    assert_eq!(held["active"], false);
    assert_eq!(held["emails"][0]["value"], "amy@example.com", "kept");
    assert_eq!(held["phoneNumbers"].as_array().map(Vec::len), Some(2));
    assert_eq!(version.as_deref(), Some("W/\"2\""));
    let put = double
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    assert_eq!(put.header("if-match"), Some("W/\"1\""));
    // A stale version is refused before anything is written.
    let err = scim
        .update_user(&user.id, Some("W/\"1\""), &update)
        .expect_err("stale");
    assert!(err.to_string().contains("stale"), "{err}");

    let group = double.insert(
        "Groups",
        json!({"displayName": "Sales", "externalId": "k", "members": [{"value": user.id}]}),
    );
    scim.update_group(
        &group,
        Some("W/\"1\""),
        &GroupUpdate {
            name: Some("Sales EMEA".into()),
            ..GroupUpdate::default()
        },
    )
    .expect("rename by PUT");
    let held = double.get("Groups", &group).expect("group");
    assert_eq!(held["displayName"], "Sales EMEA");
    assert_eq!(held["members"][0]["value"], json!(user.id), "members kept");
}

/// Without PATCH, and with groups answered without members, a PUT would drop the members:
/// refused, and the group is left as it was. The empty 501 is explained.
#[test]
fn a_put_that_would_drop_members_is_refused() {
    let (double, scim, _dir) = start(Quirks {
        patch_not_implemented: true,
        no_members_in_answers: true,
        ..Quirks::default()
    });
    let group = double.insert(
        "Groups",
        json!({"displayName": "Sales", "externalId": "k", "members": [{"value": "u1"}]}),
    );
    let err = scim
        .update_group(
            &group,
            None,
            &GroupUpdate {
                name: Some("X".into()),
                ..GroupUpdate::default()
            },
        )
        .expect_err("refused");
    assert!(err.to_string().contains("drop"), "{err}");
    let held = double.get("Groups", &group).expect("group");
    assert_eq!(held["displayName"], "Sales");
    assert_eq!(held["members"], json!([{"value": "u1"}]));

    let err = scim
        .change_members(&group, &["u2".into()], &[])
        .expect_err("no PATCH");
    let message = err.to_string();
    assert!(
        message.contains("HTTP 501") && message.contains("Not Implemented"),
        "{message}"
    );
    assert!(!message.trim_end().ends_with(':'), "{message}");
}

#[test]
fn a_change_the_provider_drops_is_a_failure_that_says_so() {
    let (double, scim, _dir) = start(Quirks {
        ignore_active: true,
        ..Quirks::default()
    });
    let id = double.insert(
        "Users",
        json!({"userName": "amy", "externalId": "k", "active": true}),
    );
    let err = scim
        .update_user(
            &id,
            None,
            &UserUpdate {
                active: Some(false),
                ..UserUpdate::default()
            },
        )
        .expect_err("active was dropped");
    let message = err.to_string();
    assert!(message.contains("ignored `active`"), "{message}");
    assert!(message.contains("mode delete"), "{message}");
    assert_eq!(double.get("Users", &id).expect("user")["active"], true);
}

/// A provider that folds userName keeps what SCIM calls the same userName: not a drop.
#[test]
fn a_folded_username_is_not_a_dropped_change() {
    let (double, scim, _dir) = start(Quirks {
        fold_usernames: true,
        versions: false,
        ..Quirks::default()
    });
    let id = double.insert("Users", json!({"userName": "amy", "externalId": "k"}));
    scim.update_user(
        &id,
        None,
        &UserUpdate {
            username: Some("Amy.Pond".into()),
            ..UserUpdate::default()
        },
    )
    .expect("update");
    assert_eq!(
        double.get("Users", &id).expect("user")["userName"],
        "amy.pond"
    );
}

/// Users and groups as AWS holds them: `amy` in Sales, `bea` in Sales and Ops, Legal empty.
fn seed_memberships(double: &ScimDouble) -> (String, String) {
    let amy = double.insert("Users", json!({"userName": "amy", "externalId": "k-amy"}));
    let bea = double.insert("Users", json!({"userName": "bea", "externalId": "k-bea"}));
    double.insert("Users", json!({"userName": "cid", "externalId": "k-cid"}));
    double.insert(
        "Groups",
        json!({"displayName": "Sales", "externalId": "k-sales",
               "members": [{"value": amy}, {"value": bea}]}),
    );
    double.insert(
        "Groups",
        json!({"displayName": "Ops", "members": [{"value": bea}]}),
    );
    double.insert("Groups", json!({"displayName": "Legal", "members": []}));
    (amy, bea)
}

fn listed_members(scim: &ScimService) -> Vec<(String, Vec<String>)> {
    let mut groups = Vec::new();
    scim.list_groups(&mut |g| groups.push((g.name, g.members)))
        .expect("listing");
    for (_, members) in &mut groups {
        members.sort();
    }
    groups.sort();
    groups
}

/// AWS lists groups with no members: with the preset, and without it (seen: not one
/// group with a member), memberships are read with `members eq` filters, pages stay
/// within AWS's 100, and a PUT of a group is never sent (it would drop the members).
#[test]
fn groups_listed_without_members_are_read_with_member_filters() {
    for provider in [ScimProvider::Aws, ScimProvider::Generic] {
        let double = ScimDouble::start(Quirks::aws());
        let (amy, bea) = seed_memberships(&double);
        let (scim, _dir) = service_for(&double, provider, ScimCompatibility::default());
        let mut expected = vec![
            ("Legal".to_string(), Vec::new()),
            ("Ops".to_string(), vec![bea.clone()]),
            ("Sales".to_string(), vec![amy.clone(), bea.clone()]),
        ];
        expected.iter_mut().for_each(|(_, m)| m.sort());
        assert_eq!(listed_members(&scim), expected, "{provider:?}");
        let filters = filters_sent(&double);
        assert!(
            filters
                .iter()
                .any(|f| f == &format!("members eq \"{amy}\"")),
            "{provider:?}: {filters:?}"
        );
        assert!(
            double.requests().iter().all(|r| r
                .param("count")
                .is_none_or(|c| c.parse::<u32>().is_ok_and(|c| c <= 100))),
            "pages within AWS's limit"
        );
    }
}

/// A provider honest about empty groups, whose `members eq` filter is ignored: the listing
/// is taken as it is (no memberships invented); stated to omit members, it is an error.
#[test]
fn member_filters_that_answer_everything_are_not_believed() {
    let double = ScimDouble::start(Quirks {
        filters: Filters::Ignored,
        ..Quirks::default()
    });
    double.insert("Users", json!({"userName": "amy", "externalId": "k-amy"}));
    double.insert("Groups", json!({"displayName": "Sales", "members": []}));
    double.insert("Groups", json!({"displayName": "Ops", "members": []}));
    let (scim, _dir) = service(&double);
    assert_eq!(
        listed_members(&scim),
        [
            ("Ops".to_string(), Vec::new()),
            ("Sales".to_string(), Vec::new())
        ]
    );
    let (scim, _dir) = service_for(
        &double,
        ScimProvider::Generic,
        ScimCompatibility {
            members_in_listings: Some(false),
            ..ScimCompatibility::default()
        },
    );
    let mut sink = |_| {};
    let err = scim
        .list_groups(&mut sink)
        .expect_err("cannot read memberships");
    assert!(
        err.to_string().contains("memberships cannot be read"),
        "{err}"
    );
}

/// `compatibility` switches act before any refusal: `patch #false` sends no PATCH at all,
/// `value-paths #false` no value path, `max-page-size` caps `count`.
#[test]
fn compatibility_switches_act_from_the_first_request() {
    let double = ScimDouble::start(Quirks {
        patch_not_implemented: true,
        value_paths_refused: true,
        max_count: Some(1),
        ..Quirks::default()
    });
    let id = double.insert("Users", json!({"userName": "amy", "externalId": "k"}));
    let group = double.insert(
        "Groups",
        json!({"displayName": "Sales", "externalId": "k-s", "members": [{"value": id}]}),
    );
    let (scim, _dir) = service_for(
        &double,
        ScimProvider::Generic,
        ScimCompatibility {
            patch: Some(false),
            value_paths: Some(false),
            max_page_size: Some(1),
            ..ScimCompatibility::default()
        },
    );
    scim.update_user(
        &id,
        None,
        &UserUpdate {
            name: Some("Amy".into()),
            ..UserUpdate::default()
        },
    )
    .expect("update by PUT");
    assert_eq!(
        double.get("Users", &id).expect("user")["displayName"],
        "Amy"
    );
    let mut users = 0;
    scim.list_users(&mut |_| users += 1)
        .expect("listing by ones");
    assert_eq!(users, 1);
    scim.update_group(
        &group,
        None,
        &GroupUpdate {
            name: Some("Sales EMEA".into()),
            ..GroupUpdate::default()
        },
    )
    .expect("rename by PUT");
    assert_eq!(
        double.get("Groups", &group).expect("group")["displayName"],
        "Sales EMEA"
    );
    assert!(
        double.requests().iter().all(|r| r.method != "PATCH"),
        "no PATCH was tried"
    );
}

/// PATCH refused only for `displayName` / `externalId`: renames and adoptions go by PUT,
/// member changes keep their PATCH; PATCH refused whole: members go by GET then PUT with
/// If-Match, hand-added members kept.
#[test]
fn partial_or_no_patch_still_changes_names_and_members() {
    let (double, scim, _dir) = start(Quirks {
        patch_partial: true,
        ..Quirks::default()
    });
    let group = double.insert(
        "Groups",
        json!({"displayName": "Sales", "members": [{"value": "hand"}]}),
    );
    scim.update_group(
        &group,
        Some("W/\"1\""),
        &GroupUpdate {
            external_id: Some("k-sales".into()),
            name: Some("Sales EMEA".into()),
        },
    )
    .expect("adopted by PUT");
    scim.change_members(&group, &["u1".into()], &[])
        .expect("members by PATCH");
    let held = double.get("Groups", &group).expect("group");
    assert_eq!(
        (held["displayName"].as_str(), held["externalId"].as_str()),
        (Some("Sales EMEA"), Some("k-sales"))
    );
    assert_eq!(held["members"], json!([{"value": "hand"}, {"value": "u1"}]));
    let methods: Vec<String> = double.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods.iter().filter(|m| *m == "PUT").count(),
        1,
        "{methods:?}"
    );
    assert_eq!(
        methods.last().map(String::as_str),
        Some("PATCH"),
        "{methods:?}"
    );

    let (double, scim, _dir) = start(Quirks {
        patch_not_implemented: true,
        ..Quirks::default()
    });
    let group = double.insert(
        "Groups",
        json!({"displayName": "Ops", "externalId": "k-ops",
               "members": [{"value": "hand"}, {"value": "u1"}]}),
    );
    scim.change_members(&group, &["u2".into()], &["u1".into()])
        .expect("members by PUT");
    let held = double.get("Groups", &group).expect("group");
    assert_eq!(held["members"], json!([{"value": "hand"}, {"value": "u2"}]));
    let put = double
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    assert_eq!(put.header("if-match"), Some("W/\"1\""));

    // Without versions a member list is not written back whole.
    let (double, scim, _dir) = start(Quirks {
        patch_not_implemented: true,
        versions: false,
        ..Quirks::default()
    });
    let group = double.insert(
        "Groups",
        json!({"displayName": "Ops", "members": [{"value": "hand"}]}),
    );
    let err = scim
        .change_members(&group, &["u2".into()], &[])
        .expect_err("no safe PUT");
    assert!(err.to_string().contains("keeps no versions"), "{err}");
    assert_eq!(
        double.get("Groups", &group).expect("group")["members"],
        json!([{"value": "hand"}])
    );
}

/// `value-paths #false`: removals go as `members` with a value list from the first request,
/// with no refused request first.
#[test]
fn value_paths_switched_off_are_never_sent() {
    let double = ScimDouble::start(Quirks {
        value_paths_refused: true,
        ..Quirks::default()
    });
    let group = double.insert(
        "Groups",
        json!({"displayName": "Sales", "externalId": "k", "members": [{"value": "u1"}, {"value": "u2"}]}),
    );
    let (scim, _dir) = service_for(
        &double,
        ScimProvider::Generic,
        ScimCompatibility {
            value_paths: Some(false),
            ..ScimCompatibility::default()
        },
    );
    scim.change_members(&group, &[], &["u1".into()])
        .expect("member removal");
    assert_eq!(
        double.get("Groups", &group).expect("group")["members"],
        json!([{"value": "u2"}])
    );
    let requests = double.requests();
    assert_eq!(requests.len(), 1, "one request, no refusal first");
    assert!(
        !requests[0].body.contains("members[value"),
        "{}",
        requests[0].body
    );
}

/// Without `page-size`, listings ask for the largest page the provider accepts: its
/// `filter.maxResults` (here 100), or 500 when it has no `/ServiceProviderConfig`. A
/// configured `page-size` is used as it is, and the listing is complete either way.
#[test]
fn listings_page_by_the_advertised_max_results_unless_configured() {
    let counts_for = |spc_doc: Option<serde_json::Value>, page_size: Option<u32>| {
        let double = ScimDouble::start(Quirks {
            spc: spc_doc,
            ..Quirks::default()
        });
        for i in 0..150 {
            double.insert(
                "Users",
                json!({"userName": format!("u{i:03}"), "active": true}),
            );
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).expect("token file");
        let config = ScimTarget {
            url: Spanned::new(double.url.clone(), (0, 0).into()),
            token: Spanned::new(SecretRef::File(token_file), (0, 0).into()),
            http: HttpOptions::default(),
            concurrency: 1,
            rate_limit: None,
            page_size,
            provider: Default::default(),
            compatibility: Default::default(),
        };
        let scim = ScimService::new(&config, Vec::new()).expect("service");
        let mut listed = 0;
        assert_eq!(scim.list_users(&mut |_| listed += 1).expect("listing"), 150);
        assert_eq!(listed, 150);
        double
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/Users"))
            .filter_map(|r| r.param("count").map(str::to_string))
            .collect::<Vec<String>>()
    };
    assert_eq!(counts_for(Some(spc(true, true)), None), ["100", "100"]);
    assert_eq!(counts_for(None, None), ["500"]);
    assert_eq!(counts_for(Some(spc(true, true)), Some(40)), ["40"; 4]);
}
