#![allow(dead_code)]

//! The world most end-to-end tests run in: a real slapd with a few people, a real
//! scim2-server, and a working directory with a roster.kdl; plus helpers to run the real
//! `roster` binary there and to read what the target holds.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::scim::ScimServer;
use super::slapd::{Slapd, person};

pub const LDAP_PASSWORD_VAR: &str = "E2E_LDAP_PASSWORD";
pub const SCIM_TOKEN_VAR: &str = "E2E_SCIM_TOKEN";

/// One directory, one target, one working directory with a roster.kdl.
/// The parts of a roster.kdl that tests vary; empty means the standard value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cfg<'a> {
    /// LDAP URL (default: the slapd's plain URL).
    pub url: &'a str,
    /// Extra nodes in the source block (TLS settings).
    pub tls: &'a str,
    /// The body of the inline policy block.
    pub policy: &'a str,
    /// Extra nodes in the target block.
    pub target: &'a str,
    /// Extra nodes in the user block.
    pub user: &'a str,
    /// The key attribute (default entryUUID).
    pub key: &'a str,
}

pub struct World {
    pub slapd: Slapd,
    pub scim: ScimServer,
    pub dir: tempfile::TempDir,
    /// Overrides for the secrets roster reads (to test wrong ones).
    pub ldap_password: String,
    pub scim_token: String,
}

impl World {
    pub fn new(people: &[(&str, &str, Option<&str>, &[&str])]) -> World {
        World::on(Slapd::start(), people)
    }

    /// A world whose slapd has the `syncprov` overlay (RFC 4533 content sync).
    pub fn with_syncprov(people: &[(&str, &str, Option<&str>, &[&str])]) -> World {
        World::on(Slapd::start_with_syncprov(), people)
    }

    /// A world whose slapd's syncprov answers a stale cookie `e-syncRefreshRequired`.
    pub fn with_syncprov_reload_hint(people: &[(&str, &str, Option<&str>, &[&str])]) -> World {
        World::on(Slapd::start_with_syncprov_reload_hint(), people)
    }

    fn on(slapd: Slapd, people: &[(&str, &str, Option<&str>, &[&str])]) -> World {
        World::serving(slapd, ScimServer::start(), people)
    }

    /// A world with `n` generated people and `scim` as its target.
    pub fn many_on(n: usize, scim: ScimServer) -> World {
        let world = World::serving(Slapd::start(), scim, &[]);
        world.slapd.add(&super::slapd::people_ldif(n));
        world
    }

    fn serving(
        slapd: Slapd,
        scim: ScimServer,
        people: &[(&str, &str, Option<&str>, &[&str])],
    ) -> World {
        for (uid, cn, mail, phones) in people {
            slapd.add(&person(uid, cn, *mail, phones));
        }
        let world = World {
            ldap_password: slapd.admin_password.clone(),
            scim_token: scim.token.clone(),
            slapd,
            scim,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        world.write_config("");
        world
    }

    /// A world with `n` generated people (user000001, ...).
    pub fn many(n: usize) -> World {
        let world = World::new(&[]);
        world.slapd.add(&super::slapd::people_ldif(n));
        world
    }

    pub fn standard() -> World {
        World::new(&[
            (
                "alice",
                "Alice Liddell",
                Some("alice@example.com"),
                &["+1 555 0100"],
            ),
            ("bob", "Bob Builder", Some("bob@example.com"), &[]),
            (
                "carol",
                "Carol Danvers",
                Some("carol@example.com"),
                &["+1 555 0102", "+1 555 0103"],
            ),
        ])
    }

    /// Writes roster.kdl: the LDAP source, the SCIM target, the standard mapping, and `policy`
    /// (the body of an inline policy block).
    pub fn write_config(&self, policy: &str) {
        self.write_config_with(&self.slapd.url, "", policy);
    }

    pub fn write_config_with(&self, url: &str, tls: &str, policy: &str) {
        self.write(&Cfg {
            url,
            tls,
            policy,
            ..Cfg::default()
        });
    }

    /// Writes roster.kdl from its parts.
    pub fn write(&self, cfg: &Cfg<'_>) {
        let Cfg {
            url,
            tls,
            policy,
            target,
            user,
            key,
        } = *cfg;
        let key = if key.is_empty() { "entryUUID" } else { key };
        let url = if url.is_empty() {
            self.slapd.url.as_str()
        } else {
            url
        };
        let config = format!(
            r#"
state "state.db"
source "ldap" {{
    url "{url}"
    {tls}
    bind-dn "{admin}"
    bind-password env="{LDAP_PASSWORD_VAR}"
    base-dn "ou=People,{base}"
    filter "(objectClass=inetOrgPerson)"
    page-size 2
    timeout 5
}}
target "scim" {{
    url "{scim}"
    token env="{SCIM_TOKEN_VAR}"
    {target}
}}
user {{
    key "{key}"
    username "uid" normalize="lowercase"
    name "cn"
    email "mail"
    phone "telephoneNumber" "mobile"
    {user}
}}
policy {{
    {policy}
}}
"#,
            admin = self.slapd.admin_dn,
            base = self.slapd.base_dn,
            scim = self.scim.url,
        );
        std::fs::write(self.path("roster.kdl"), config).expect("write config");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env(LDAP_PASSWORD_VAR, &self.ldap_password)
            .env(SCIM_TOKEN_VAR, &self.scim_token);
        command
    }

    pub fn roster(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run roster")
    }

    /// Starts roster without waiting for it (stdout and stderr piped).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roster")
    }

    /// Runs roster and checks its exit code; returns stdout.
    pub fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.roster(args);
        super::expect_code(&out, args, code);
        text(&out.stdout)
    }

    pub fn plan_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["plan", "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args, 0)).expect("plan JSON")
    }

    pub fn user(&self, username: &str) -> Value {
        self.scim
            .user_by_username(username)
            .unwrap_or_else(|| panic!("{username} is not in the target"))
    }

    pub fn entry_uuid(&self, uid: &str) -> String {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &self.slapd.url,
                "-D",
                &self.slapd.admin_dn,
                "-w",
                &self.slapd.admin_password,
            ])
            .args([
                "-b",
                &self.slapd.base_dn,
                &format!("(uid={uid})"),
                "entryUUID",
            ])
            .output()
            .expect("ldapsearch");
        text(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("entryUUID: "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no entryUUID for {uid}"))
    }

    pub fn dn(&self, uid: &str) -> String {
        format!("uid={uid},ou=People,{}", self.slapd.base_dn)
    }
}

pub use super::text;

pub fn actions(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {}",
                a["action"].as_str().unwrap_or("?"),
                a["object"].as_str().unwrap_or("?"),
                a["username"].as_str().unwrap_or("?"),
                a["status"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

pub fn emails(user: &Value) -> Vec<(String, String)> {
    user["emails"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["value"].as_str().unwrap_or("").to_string(),
                        e["type"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn phones(user: &Value) -> Vec<String> {
    user["phoneNumbers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| p["value"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn active(user: &Value) -> bool {
    user.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// The policy lines of an incremental config with removes allowed up to 5.
pub const INCREMENTAL: &str = "mode \"remove\"\n    max-removes 5\n    read \"incremental\"";

/// The plan JSON's notes.
pub fn notes(plan: &Value) -> Vec<String> {
    plan["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The plan's note that starts with `prefix` (panics naming the notes when none does).
pub fn note_starting(plan: &Value, prefix: &str) -> String {
    notes(plan)
        .into_iter()
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no note starting {prefix:?} in {:?}", notes(plan)))
}
