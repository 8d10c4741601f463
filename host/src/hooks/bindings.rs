//! Host bindings for the WIT contract in `wit/`.
//!
//! One world, `any-hook`, gives the imports (the logger) and the types; each
//! hook kind is then one exported interface, looked up per component.

wasmtime::component::bindgen!({
    world: "any-hook",
    path: "../wit",
});

pub use self::exports::podrun::hook::classify;
pub use self::exports::podrun::hook::mutate;
pub use self::exports::podrun::hook::render;
pub use self::podrun::hook::log;
pub use self::podrun::hook::types;
