//! End-to-end tests of podrun: the CLI as a user runs it, and the hook engine
//! with real components built from this repository's guests.

mod cli;
mod engine;
mod examples;
mod kube;
mod languages;
mod local;
mod proxy;
mod replay;
mod sandbox;
mod scripts;
mod server;
mod support;
mod tenants;
mod web;
