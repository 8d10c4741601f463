//! Host bindings for the WIT contract in `wit/`.
//!
//! One world, `any-hook`, gives the imports (the logger) and the types; each
//! hook kind is then one exported interface, looked up per component.

wasmtime::component::bindgen!({
    world: "any-hook",
    path: "../wit",
});

pub use exports::podrun::hook::classify;
pub use exports::podrun::hook::mutate;
pub use exports::podrun::hook::render;
pub use podrun::hook::log;
pub use podrun::hook::types;
