//! Progress of a sync's long steps: on a terminal a bar per step (builds and conversions
//! spin with their current stage, uploads count bytes); otherwise nothing here — the plain
//! log lines each step writes are the progress.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where bars are drawn, when anywhere.
#[derive(Clone, Default)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("bars", &self.multi.is_some())
            .finish()
    }
}

impl Progress {
    /// Bars on standard error when it is a terminal (and `TERM` is not `dumb`), else none.
    #[must_use]
    pub fn for_stderr() -> Self {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if std::io::stderr().is_terminal() && !dumb {
            Self {
                multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            }
        } else {
            Self::default()
        }
    }

    /// A spinner for a step of unknown length; its message can follow the step's stages.
    #[must_use]
    pub fn spinner(&self, what: &str) -> Bar {
        let Some(multi) = &self.multi else {
            return Bar(None);
        };
        let bar = multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar(Some(bar))
    }

    /// A bar counting bytes (an upload).
    #[must_use]
    pub fn bytes(&self, what: &str) -> Bar {
        let Some(multi) = &self.multi else {
            return Bar(None);
        };
        let bar = multi.add(ProgressBar::new(0));
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_owned());
        Bar(Some(bar))
    }
}

/// One bar (or nothing, when not on a terminal). Cleared when dropped.
#[derive(Clone)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn set_message(&self, message: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.to_owned());
        }
    }

    /// A transfer progress reporter feeding this bar (`None` when there is no bar).
    #[must_use]
    pub fn as_transfer_progress(&self) -> crate::transfer::ProgressRef {
        let bar = self.0.clone()?;
        Some(Arc::new(move |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        }))
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_there_are_no_bars() {
        // Tests run with stderr captured: not a terminal.
        let p = Progress::for_stderr();
        let bar = p.spinner("x");
        bar.set_message("step 1/3");
        assert!(bar.as_transfer_progress().is_none());
        assert!(p.bytes("y").as_transfer_progress().is_none());
    }
}
