//! roster keeps a target user-management system in line with a source directory, one way,
//! the way Terraform does it for infrastructure: read both sides into a SQLite state store,
//! plan the difference under safety policies, show it, and apply only an approved plan.
//!
//! The binary (`src/main.rs`) is glue; `commands` holds one function per subcommand.
//! See ARCHITECTURE.md for the code map and the invariants.

// Errors here carry their context (URL, DN, target answer) by value so that each message can
// say what and where; they travel only on the failure path, where their size costs nothing.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod expr;
pub mod http;
pub mod logging;
pub mod mapping;
pub mod membership;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod plan;
pub mod planner;
pub mod progress;
pub mod render;
pub mod secret;
pub mod source;
pub mod stale;
pub mod store;
pub mod target;
pub mod text;
