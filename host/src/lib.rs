#![doc = include_str!("../../README.md")]
// The library never prints or exits: that is the binary's business.
#![deny(missing_docs, clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod cancel;
pub mod command;
pub mod config;
pub mod context;
pub mod convert;
pub mod exit;
pub mod hook_test;
pub mod hooks;
pub mod lifecycle;
pub mod pipeline;
pub mod progress;
pub mod result;
pub mod run;
pub mod run_id;
pub mod runtime;
pub mod scaffold;
pub mod status_server;
pub mod steps;
pub mod timeline;
