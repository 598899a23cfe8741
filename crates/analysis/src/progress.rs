//! Progress reporting and cancellation, shared by every stage.
//!
//! Adapters implement [`Progress`] to drive a progress bar (CLI), post messages
//! to the page (WASM worker) or update a job row (server), and to cancel a run.

use serde::{Deserialize, Serialize};

/// The pipeline stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Parsing files, choosing the series, decoding pixels to HU.
    Ingest,
    /// Resampling to the model's isotropic spacing.
    Resample,
    /// Body and lung masks.
    Lungs,
    /// Nodule and mass candidate detection.
    Candidates,
    /// Classifying candidate patches.
    Classify,
    /// Segmenting and measuring findings.
    Measure,
    /// Diffuse opacities (ground glass, consolidation) and the CT severity score.
    Opacities,
    /// Risk, Lung-RADS and triage.
    Triage,
    /// Report and key images.
    Report,
}

impl Stage {
    /// All stages in pipeline order.
    pub const ALL: [Stage; 9] = [
        Stage::Ingest,
        Stage::Resample,
        Stage::Lungs,
        Stage::Candidates,
        Stage::Classify,
        Stage::Measure,
        Stage::Opacities,
        Stage::Triage,
        Stage::Report,
    ];

    /// The snake_case name used in reports and timings.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Resample => "resample",
            Stage::Lungs => "lungs",
            Stage::Candidates => "candidates",
            Stage::Classify => "classify",
            Stage::Measure => "measure",
            Stage::Opacities => "opacities",
            Stage::Triage => "triage",
            Stage::Report => "report",
        }
    }
}

/// Receives progress and answers whether to stop. Must be cheap: it is called
/// from worker threads, once per slice or candidate.
pub trait Progress: Sync {
    /// `fraction` of `stage` is done (0.0–1.0).
    fn progress(&self, stage: Stage, fraction: f64) {
        let _ = (stage, fraction);
    }
    /// Return true to abandon the run; stages then return [`crate::Error::Cancelled`].
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// A [`Progress`] that ignores progress and never cancels.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
