//! What a hook's store holds, the WASI context that grants nothing, and the
//! limits that hold for a whole call.
//!
//! Guests built for `wasm32-wasip2` import WASI even when they do not use it,
//! so WASI is linked, but with no files, no environment or arguments, no
//! sockets, stdin empty, wall and monotonic clocks frozen at the epoch, and
//! clock subscriptions that resolve at once: no real time reaches a hook,
//! and a hook cannot make the host wait. A sleep is charged to the call's
//! deadline instead; one longer than what is left of it ends the call.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, format_err};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::LogLine;
use super::bindings::{log, types};

/// How much of a hook's stdout and stderr is kept (for panic messages);
/// writing more ends the call.
pub(crate) const OUTPUT_CAPACITY: usize = 16 << 10;
/// How many log lines one call keeps, and how long each may be.
pub(crate) const MAX_LOG_LINES: usize = 64;
pub(crate) const MAX_LOG_LINE: usize = 2048;
/// How many log calls one call may make before it is stopped.
pub(crate) const MAX_LOG_CALLS: u32 = 10_000;
/// Per store: core instances, memories and tables a component may create,
/// and the table elements of all its tables together.
pub(crate) const MAX_INSTANCES: usize = 64;
pub(crate) const MAX_MEMORIES: usize = 8;
pub(crate) const MAX_TABLES: usize = 64;
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The most random bytes one WASI call may ask for.
pub(crate) const MAX_RANDOM: u64 = 64 << 10;

/// When the guest last got a thread back after a yield.
#[derive(Clone)]
pub(crate) struct Resumed(std::sync::Arc<std::sync::Mutex<Mark>>);

impl Default for Resumed {
    fn default() -> Self {
        Resumed(std::sync::Arc::new(std::sync::Mutex::new(Mark::now())))
    }
}

impl Resumed {
    fn set(&self, mark: Mark) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = mark;
    }

    fn get(&self) -> Mark {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A point in a call's run: the time, and the thread's use of its CPU.
#[derive(Clone, Copy)]
struct Mark {
    at: Instant,
    usage: Option<Usage>,
    thread: std::thread::ThreadId,
}

impl Mark {
    fn now() -> Mark {
        Mark {
            at: Instant::now(),
            usage: Usage::now(),
            thread: std::thread::current().id(),
        }
    }

    /// The time run since the mark. A thread only held back for a CPU (a
    /// busy machine: the OS or hypervisor switched it out) is charged its
    /// CPU time; one that blocked of its own accord (a page read back from
    /// swap, a lock, any waiting host call) and one that moved to another
    /// thread are charged the wall-clock time, so no wait escapes the
    /// deadline.
    fn ran_since(&self) -> Duration {
        match (self.usage, Usage::now()) {
            (Some(then), Some(now))
                if self.thread == std::thread::current().id() && now.blocked == then.blocked =>
            {
                now.cpu.saturating_sub(then.cpu)
            }
            _ => self.at.elapsed(),
        }
    }
}

/// The calling thread's CPU time, and how often it has blocked (voluntary
/// context switches).
#[derive(Clone, Copy)]
struct Usage {
    cpu: Duration,
    blocked: i64,
}

impl Usage {
    fn now() -> Option<Usage> {
        // SAFETY: rusage is plain data, valid when zeroed; getrusage writes
        // only the struct it is given.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) } != 0 {
            return None;
        }
        let time = |t: libc::timeval| {
            Duration::new(t.tv_sec as u64, 0) + Duration::from_micros(t.tv_usec as u64)
        };
        Some(Usage {
            cpu: time(r.ru_utime) + time(r.ru_stime),
            blocked: r.ru_nvcsw,
        })
    }
}

/// Why the sandbox stopped a call, when it was the sandbox that did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The call's deadline ran out (computing or sleeping).
    Deadline,
    /// The call asked for more memory than its cap.
    Memory,
    /// The call made too many log calls.
    LogCalls,
    /// The component asked for more instances, memories, tables or table
    /// elements than a hook may have.
    Resources,
}

/// The state of one call's store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreCaps,
    pub(crate) logs: Vec<LogLine>,
    log_calls: u32,
    /// The call's deadline, and what it has used of it.
    pub(crate) budget: Duration,
    ran: Duration,
    resumed: Resumed,
    slept: Duration,
    /// Set when the sandbox, rather than the guest, ended the call.
    pub(crate) stopped: Option<Stopped>,
}

impl HostState {
    pub(crate) fn new(memory_limit: usize, output: MemoryOutputPipe) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output)
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            // Real entropy for what a guest takes as secure; the insecure
            // source (hash seeds) stays fixed so that output is repeatable.
            .secure_random(wasmtime_wasi::thread_rng())
            .insecure_random(rand::rngs::StdRng::seed_from_u64(1))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreCaps {
                memory_limit,
                memory: 0,
                table_elements: 0,
                exceeded: None,
            },
            logs: Vec::new(),
            log_calls: 0,
            budget: Duration::ZERO,
            ran: Duration::ZERO,
            resumed: Resumed::default(),
            slept: Duration::ZERO,
            stopped: None,
        }
    }

    /// Starts a call with `budget` of deadline.
    pub(crate) fn arm(&mut self, budget: Duration) {
        self.budget = budget;
        self.ran = Duration::ZERO;
        self.slept = Duration::ZERO;
        self.log_calls = 0;
        self.stopped = None;
        self.limits.exceeded = None;
        self.resumed.set(Mark::now());
    }

    /// What the call has used of its deadline: the time it ran (guest code
    /// and host calls, not the time it waited, yielded or held back, for a
    /// CPU) and what it slept.
    fn used(&self) -> Duration {
        self.ran.saturating_add(self.slept)
    }

    /// Called at each epoch tick while the guest runs: adds the time it ran
    /// since it last got a thread, and says whether the deadline is past.
    pub(crate) fn tick_passed(&mut self) -> bool {
        self.ran += self.resumed.get().ran_since();
        if self.used() >= self.budget {
            self.stopped = Some(Stopped::Deadline);
            return true;
        }
        false
    }

    /// A yield to the executor that notes when the guest runs again.
    pub(crate) fn yield_now(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let resumed = self.resumed.clone();
        async move {
            tokio::task::yield_now().await;
            resumed.set(Mark::now());
        }
    }

    /// Why the sandbox stopped the call, if it did.
    pub(crate) fn stop_reason(&self) -> Option<Stopped> {
        self.stopped.or(self.limits.exceeded)
    }

    /// A sleep of `duration`: charged to the deadline, or past it.
    fn sleep(&mut self, duration: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let left = self.budget.saturating_sub(self.used());
        if duration >= left {
            self.stopped = Some(Stopped::Deadline);
            return Err(format_err!("the hook slept past its deadline"));
        }
        self.slept += duration;
        let ready = self.table.push(Ready)?;
        subscribe(&mut self.table, ready)
    }

    /// A log call: kept (truncated) while there is room; counted always.
    pub(crate) fn log(&mut self, level: log::Level, message: &str) -> wasmtime::Result<()> {
        self.log_calls += 1;
        if self.log_calls > MAX_LOG_CALLS {
            self.stopped = Some(Stopped::LogCalls);
            return Err(format_err!("more than {MAX_LOG_CALLS} log calls"));
        }
        if self.logs.len() < MAX_LOG_LINES {
            self.logs.push(LogLine {
                level,
                message: super::text::shown(message, MAX_LOG_LINE),
            });
        }
        Ok(())
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

/// The monotonic clock as hooks see it: frozen, with sleeps that return at
/// once and are charged to the call's deadline.
pub(crate) struct VirtualClock;

impl wasmtime::component::HasData for VirtualClock {
    type Data<'a> = &'a mut HostState;
}

impl monotonic_clock::Host for &mut HostState {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(Frozen.resolution_ns())
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        // The clock reads 0, so an instant is a duration from now.
        self.sleep(Duration::from_nanos(when))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep(Duration::from_nanos(duration))
    }
}

/// A pollable that is ready at once.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// A clock stopped at the Unix epoch.
struct Frozen;

impl Frozen {
    fn resolution_ns(&self) -> u64 {
        1_000_000_000
    }
}

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
        self.resolution_ns()
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Caps on what one store may hold in total: all its linear memories
/// together, all its table elements together, and the number of
/// instances, memories and tables. Remembers which cap was hit so that the
/// resulting trap is reported as what it is.
pub(crate) struct StoreCaps {
    memory_limit: usize,
    memory: usize,
    table_elements: usize,
    pub(crate) exceeded: Option<Stopped>,
}

impl ResourceLimiter for StoreCaps {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let total = self.memory - current.min(self.memory) + desired;
        if total > self.memory_limit {
            self.exceeded = Some(Stopped::Memory);
            return Ok(false);
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let total = self.table_elements - current.min(self.table_elements) + desired;
        if total > MAX_TABLE_ELEMENTS {
            self.exceeded = Some(Stopped::Resources);
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until the thread has used `cpu` of CPU time.
    fn compute(cpu: Duration) {
        let start = Usage::now().unwrap().cpu;
        while Usage::now().unwrap().cpu - start < cpu {}
    }

    /// Pins the calling thread to the first CPU it may use.
    fn pin(cpu: usize) {
        // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            let done = libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
            assert_eq!(done, 0, "cannot pin a thread to CPU {cpu}");
        }
    }

    #[test]
    fn a_call_is_charged_the_time_it_computes_not_the_time_it_is_held_back() {
        // Held back: another thread computes on the same CPU, and the
        // scheduler shares it between the two.
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|&c| unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) == 0
                    && libc::CPU_ISSET(c, &set)
            })
            .unwrap();
        let charged = std::thread::spawn(move || {
            pin(cpu);
            let rival = std::thread::spawn(move || {
                pin(cpu);
                compute(Duration::from_millis(200));
            });
            std::thread::sleep(Duration::from_millis(5));
            let mark = Mark::now();
            compute(Duration::from_millis(40));
            let charged = (mark.ran_since(), mark.at.elapsed());
            rival.join().unwrap();
            charged
        })
        .join()
        .unwrap();
        let (charged, wall) = charged;
        assert!(wall >= Duration::from_millis(60), "not held back: {wall:?}");
        assert!(
            charged >= Duration::from_millis(40) && charged < Duration::from_millis(55),
            "charged {charged:?} of {wall:?}"
        );
        // Computing is charged in full.
        let mark = Mark::now();
        compute(Duration::from_millis(30));
        assert!(mark.ran_since() >= Duration::from_millis(30));
        // Blocking (a sleep here; a page read from swap, a lock) is charged
        // the wall-clock time.
        let mark = Mark::now();
        std::thread::sleep(Duration::from_millis(60));
        assert!(mark.ran_since() >= Duration::from_millis(60));
        // On another thread the mark falls back to the wall clock.
        let elsewhere = std::thread::spawn(move || mark.ran_since()).join().unwrap();
        assert!(elsewhere >= Duration::from_millis(60));
    }

    #[test]
    fn the_deadline_counts_what_a_call_computes_and_what_it_blocks() {
        let mut state = HostState::new(1 << 20, MemoryOutputPipe::new(1024));
        state.arm(Duration::from_millis(50));
        compute(Duration::from_millis(20));
        assert!(!state.tick_passed());
        // As the yield after a tick does.
        state.resumed.set(Mark::now());
        std::thread::sleep(Duration::from_millis(40));
        assert!(state.tick_passed(), "a wait escaped the deadline");
    }

    #[test]
    fn memory_is_capped_across_memories() {
        let mut caps = StoreCaps {
            memory_limit: 64 << 20,
            memory: 0,
            table_elements: 0,
            exceeded: None,
        };
        assert!(caps.memory_growing(0, 40 << 20, None).unwrap());
        // A second memory of 40 MiB would take the store to 80.
        assert!(!caps.memory_growing(0, 40 << 20, None).unwrap());
        assert_eq!(caps.exceeded, Some(Stopped::Memory));
        // Growing the first by 20 MiB fits.
        assert!(caps.memory_growing(40 << 20, 60 << 20, None).unwrap());
        assert!(!caps.memory_growing(0, 8 << 20, None).unwrap());
    }

    #[test]
    fn sleeps_are_charged_to_the_deadline() {
        let output = MemoryOutputPipe::new(16);
        let mut state = HostState::new(1 << 20, output);
        state.arm(Duration::from_millis(50));
        assert!(state.sleep(Duration::from_millis(30)).is_ok());
        assert!(state.sleep(Duration::from_millis(30)).is_err());
        assert_eq!(state.stopped, Some(Stopped::Deadline));
        state.arm(Duration::from_millis(50));
        assert!(state.sleep(Duration::MAX).is_err());
    }
}
