#![doc = include_str!("../../README.md")]

pub mod cli;
pub mod config;
pub mod exit;
pub mod hooks;
pub mod pipeline;
pub mod run_id;
