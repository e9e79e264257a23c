//! Tests only: a logger that keeps every record of the test process in memory, so a test can
//! check what the engine's log lines say (that no secret is in them, for one).
//!
//! Tests run in parallel threads of one process and share the logger: a test reads back only
//! the lines that carry a marker of its own (a unique path or host in its URLs).

use std::sync::{Mutex, Once, PoisonError};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LINES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}

/// Installs the capturing logger (once per process; every level is kept).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if log::set_logger(&Capture).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

/// The lines logged so far that contain `marker`.
pub(crate) fn lines_with(marker: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|l| l.contains(marker))
        .cloned()
        .collect()
}
