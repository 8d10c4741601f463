#![doc = include_str!("../../README.md")]

pub mod cli;
pub mod command;
pub mod config;
pub mod convert;
pub mod exit;
pub mod hook_test;
pub mod hooks;
pub mod lifecycle;
pub mod logs;
pub mod pipeline;
pub mod result;
pub mod run_id;
pub mod runtime;
pub mod scaffold;
pub mod status_server;
pub mod steps;
