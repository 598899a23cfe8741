//! [`Progress`] implementations: an indicatif bar for the terminal and an
//! atomic state for server job rows; both carry a cancellation flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use ct_triage_core::progress::{Progress, Stage};
use indicatif::{ProgressBar, ProgressStyle};

/// Bar positions per stage (the bar runs from 0 to `8 * STEPS`).
const STEPS: u64 = 100;

/// Overall fraction of the pipeline done when `stage` is `fraction` done.
pub fn overall_fraction(stage: Stage, fraction: f64) -> f64 {
    let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0) as f64;
    ((i + fraction.clamp(0.0, 1.0)) / Stage::ALL.len() as f64).clamp(0.0, 1.0)
}

/// The style of a per-series bar.
pub fn series_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>24.dim} [{bar:30.cyan/blue}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The style of an overall counting bar (`n/total`).
pub fn overall_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>24.bold} [{bar:30.green/white}] {pos}/{len} series  {elapsed_precise} (eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Drives an indicatif bar from pipeline progress (cheap: indicatif throttles drawing).
#[derive(Debug, Clone)]
pub struct BarProgress {
    bar: ProgressBar,
    cancel: Arc<AtomicBool>,
}

impl BarProgress {
    /// A bar over the whole pipeline; pass [`ProgressBar::hidden`] for none.
    pub fn new(bar: ProgressBar) -> Self {
        bar.set_length(Stage::ALL.len() as u64 * STEPS);
        bar.set_style(series_style());
        BarProgress {
            bar,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The underlying bar.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// A flag that cancels the run when set.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }
}

impl Progress for BarProgress {
    fn progress(&self, stage: Stage, fraction: f64) {
        let pos =
            (overall_fraction(stage, fraction) * (Stage::ALL.len() as u64 * STEPS) as f64) as u64;
        if pos > self.bar.position() {
            self.bar.set_position(pos);
        }
        // Re-setting the same message is cheap; indicatif redraws at most ~20 Hz.
        self.bar.set_message(stage.name());
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Progress of a server job, read by `GET /v1/jobs/{id}` while it runs.
#[derive(Debug, Default)]
pub struct JobProgress {
    /// Index of the current stage in [`Stage::ALL`].
    stage: AtomicU32,
    /// Overall fraction done, in parts per 10 000.
    overall: AtomicU32,
    /// Set to abandon the run.
    cancel: AtomicBool,
}

impl JobProgress {
    /// A fresh, uncancelled progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current stage and the overall fraction done.
    pub fn snapshot(&self) -> (Stage, f64) {
        let i = self.stage.load(Ordering::Relaxed) as usize;
        let stage = Stage::ALL.get(i).copied().unwrap_or(Stage::Ingest);
        (
            stage,
            self.overall.load(Ordering::Relaxed) as f64 / 10_000.0,
        )
    }

    /// Ask the run to stop at the next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Progress for JobProgress {
    fn progress(&self, stage: Stage, fraction: f64) {
        let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0) as u32;
        self.stage.fetch_max(i, Ordering::Relaxed);
        let v = (overall_fraction(stage, fraction) * 10_000.0) as u32;
        self.overall.fetch_max(v, Ordering::Relaxed);
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}
