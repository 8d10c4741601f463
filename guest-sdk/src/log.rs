//! Messages for the user, shown by podrun with the hook's name.
//!
//! Inside a component they go to the host; in unit tests on your machine
//! they are printed to stderr.

#[derive(Clone, Copy)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::export::log_import as host;
        let level = match level {
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        eprintln!("{level}: {message}");
    }
}

/// Logs a debug message (shown with `--verbose`).
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Logs an informational message.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs an error (the hook should still return its error or refusal).
pub fn error(message: &str) {
    log(Level::Error, message)
}
