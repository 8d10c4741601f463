//! Host bindings for the WIT contract in `wit/`.
//!
//! One world, `script-hook`, gives the imports (the logger), the types and
//! every exported interface; each component is then checked for the
//! interface of its kind, and script interpreters for `script` too.

// Generated: the WIT's own comments are its docs, where it has them.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "script-hook",
    path: "../wit",
});

pub use self::exports::podrun::hook::classify;
pub use self::exports::podrun::hook::mutate;
pub use self::exports::podrun::hook::render;
pub use self::exports::podrun::hook::script;
pub use self::podrun::hook::log;
pub use self::podrun::hook::types;
