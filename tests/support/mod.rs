//! Test harness: real servers started per test from temporary directories, and local doubles
//! of the vendor APIs (ServiceNow, Freshservice) that cannot run here.

pub mod scim;
pub mod slapd;
pub mod vendors;
pub mod world;
