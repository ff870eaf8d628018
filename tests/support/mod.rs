//! Test harness: real servers started per test from temporary directories.

pub mod scim;
pub mod slapd;
pub mod world;
