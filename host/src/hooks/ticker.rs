//! The engine's epoch: it advances every [`TICK`] while a hook may run,
//! which bounds each call's compute and makes it yield the thread; with no
//! call for a while, the thread sleeps instead of waking a thousand times
//! a second in an idle podrun.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances: the granularity of call deadlines, and
/// how long a hook computes before it yields the thread to other work.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Ticks without a call before the thread sleeps.
const IDLE_TICKS: u32 = 100;

/// How long a sleeping thread waits before it checks that its engine is
/// still there.
const ASLEEP_AT_MOST: Duration = Duration::from_secs(1);

/// Calls in progress, and the thread to wake when one starts.
pub(crate) struct Ticker {
    busy: AtomicUsize,
    asleep: AtomicBool,
    thread: OnceLock<Thread>,
}

/// A call in progress: the epoch advances while one exists.
pub(crate) struct Busy<'a>(&'a Ticker);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, SeqCst);
    }
}

impl Ticker {
    /// Starts `engine`'s ticker; it ends when the engine is dropped.
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker {
            busy: AtomicUsize::new(0),
            asleep: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        let weak = engine.weak();
        let this = ticker.clone();
        std::thread::Builder::new()
            .name("podrun-epoch".into())
            .spawn(move || {
                // Set before the thread can sleep, so a call can wake it.
                let _ = this.thread.set(std::thread::current());
                let mut idle = 0;
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                    if this.busy.load(SeqCst) > 0 {
                        idle = 0;
                    } else if idle < IDLE_TICKS {
                        idle += 1;
                    } else {
                        // Woken by a call, or only to look at the engine.
                        this.sleep();
                    }
                }
            })?;
        Ok(ticker)
    }

    /// Sleeps until a call starts. A call that starts meanwhile either
    /// sees `asleep` and wakes the thread, or is seen here: both are
    /// sequentially consistent, so one of the two happens.
    fn sleep(&self) {
        self.asleep.store(true, SeqCst);
        if self.busy.load(SeqCst) == 0 {
            std::thread::park_timeout(ASLEEP_AT_MOST);
        }
        self.asleep.store(false, SeqCst);
    }

    /// Marks a call in progress until the guard is dropped.
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, SeqCst);
        if self.asleep.load(SeqCst)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
        Busy(self)
    }

    /// Whether the thread is asleep (no call for a while).
    #[cfg(test)]
    pub(crate) fn is_asleep(&self) -> bool {
        self.asleep.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asleep_within(ticker: &Ticker, want: bool) -> bool {
        (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            ticker.is_asleep() == want
        })
    }

    #[test]
    fn the_ticker_sleeps_without_calls_and_wakes_for_one() {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).unwrap();
        let ticker = Ticker::start(&engine).unwrap();
        assert!(asleep_within(&ticker, true), "never slept");
        let busy = ticker.busy();
        assert!(asleep_within(&ticker, false), "not woken by a call");
        // It stays awake while the call lasts.
        std::thread::sleep(TICK * IDLE_TICKS * 2);
        assert!(!ticker.is_asleep());
        drop(busy);
        assert!(asleep_within(&ticker, true), "did not sleep again");
    }
}
