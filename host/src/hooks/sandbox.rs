//! What a hook's store holds, and the WASI context that grants nothing.
//!
//! Guests built for `wasm32-wasip2` import WASI even when they do not use it,
//! so WASI is linked, but with no files, no environment or arguments, no
//! sockets, stdin empty, a clock frozen at the epoch and a fixed random seed:
//! a hook's output depends only on its input.

use std::time::Duration;

use rand::SeedableRng;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::bindings::{log, types};
use super::engine::LogLine;

/// How much of a hook's stdout and stderr is kept (for panic messages).
pub(crate) const OUTPUT_CAPACITY: usize = 16 << 10;
/// How many log lines one call may leave, and how long each may be.
const MAX_LOG_LINES: usize = 64;
const MAX_LOG_LINE: usize = 2048;

/// The state of one call's store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) logs: Vec<LogLine>,
}

impl HostState {
    pub(crate) fn new(memory_limit: usize, output: MemoryOutputPipe) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output)
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .secure_random(rand::rngs::StdRng::seed_from_u64(0))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(1))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                limit: memory_limit,
                exceeded: false,
            },
            logs: Vec::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        self.logs.push(LogLine { level, message });
    }
}

/// A clock stopped at the Unix epoch.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Refuses memory growth past the cap, and remembers that it did so that
/// the resulting trap can be reported as what it is.
pub(crate) struct MemoryCap {
    limit: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
