#![allow(dead_code)]

//! Test harness: real servers started per test from temporary directories, and local doubles
//! of the vendor APIs (ServiceNow, Freshservice) that cannot run here.

pub mod busy_scim;
pub mod cherwell;
pub mod http;
pub mod logintc;
pub mod luma;
pub mod proxy;
pub mod rest_api;
pub mod samba;
pub mod scim;
pub mod scim_double;
pub mod slapd;
pub mod smtp;
pub mod vendors;
pub mod world;
pub mod xmatters;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the real `roster` binary in `dir`, with `env` set for it alone.
pub fn roster_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("run roster")
}

/// Checks a roster run's exit code, showing both streams when it is not `code`.
pub fn expect_code(out: &Output, args: &[&str], code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "roster {args:?}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
