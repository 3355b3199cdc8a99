//! Leveled console logging.
//!
//! The level comes from `loglvl=` on the command line; the sink (the serial console) is
//! installed by the arch layer once the UART is up. Before that, and in host tests, messages
//! are dropped.

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// Message severity, ordered from most to least severe (Xen's `loglvl=` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    /// Nothing is printed.
    None = 0,
    /// Errors only.
    Error = 1,
    /// Errors and warnings.
    Warning = 2,
    /// Normal operation messages (the default).
    Info = 3,
    /// Debugging detail.
    Debug = 4,
}

impl LogLevel {
    /// Parses Xen's level names (`none`, `error`, `warning`, `info`, `debug`, `all`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "error" | "err" => Self::Error,
            "warning" | "warn" => Self::Warning,
            "info" => Self::Info,
            "debug" | "all" => Self::Debug,
            _ => return None,
        })
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::None,
            1 => Self::Error,
            2 => Self::Warning,
            3 => Self::Info,
            _ => Self::Debug,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static SINK: spin::Once<fn(fmt::Arguments<'_>)> = spin::Once::new();

/// Sets the most verbose level that is printed.
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The most verbose level that is printed.
pub fn level() -> LogLevel {
    LogLevel::from_u8(LEVEL.load(Ordering::Relaxed))
}

/// Installs the function that writes formatted text to the console.
pub fn set_sink(sink: fn(fmt::Arguments<'_>)) {
    SINK.call_once(|| sink);
}

/// Prints one line at `level` if the configured level lets it through.
pub fn log(level: LogLevel, args: fmt::Arguments<'_>) {
    if level == LogLevel::None || level > self::level() {
        return;
    }
    let Some(sink) = SINK.get() else { return };
    let tag = match level {
        LogLevel::Error => "ERROR: ",
        LogLevel::Warning => "WARNING: ",
        _ => "",
    };
    sink(format_args!("(HV) {tag}{args}\n"));
}

/// Logs an error.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::console::log::log($crate::console::log::LogLevel::Error, format_args!($($arg)*)) };
}

/// Logs a warning.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::log::log($crate::console::log::LogLevel::Warning, format_args!($($arg)*)) };
}

/// Logs an informational message.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::log::log($crate::console::log::LogLevel::Info, format_args!($($arg)*)) };
}

/// Logs a debugging message.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::console::log::log($crate::console::log::LogLevel::Debug, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_follow_xen() {
        assert_eq!(LogLevel::from_name("all"), Some(LogLevel::Debug));
        assert_eq!(LogLevel::from_name("warning"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::from_name("none"), Some(LogLevel::None));
        assert_eq!(LogLevel::from_name("loud"), None);
        assert!(LogLevel::Error < LogLevel::Info);
    }
}
