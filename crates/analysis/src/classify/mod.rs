//! Stage 6 of 11 — classify: candidate patches → a [`Prediction`] each
//! (probability of a true nodule, malignancy score, type, calcification,
//! spiculation).
//!
//! The model contract lives in the [`manifest`]; [`patch::extract_patch`] is
//! the single preprocessing path shared with the training-data generator.

#[cfg(feature = "burn")]
pub mod burn_net;
pub mod manifest;
#[cfg(feature = "ort")]
pub mod ort;
pub mod patch;
mod prediction;

pub use manifest::{InputSpec, ModelManifest, Normalization, OutputSpec};
pub use patch::{extract_patch, extract_patch_into, extract_patch_scaled_into, patch_scale};
pub use prediction::Prediction;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Identity of a loaded model, recorded in every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelId {
    /// Model name from the manifest.
    pub name: String,
    /// Model version from the manifest.
    pub version: String,
    /// SHA-256 (hex) of the weights actually loaded.
    pub sha256: String,
    /// Runtime that executes it (`burn-flex`, `ort`, …).
    pub runtime: String,
}

impl ModelId {
    /// The identity of weights with this SHA-256, loaded with `manifest`, run by `runtime`.
    pub fn of(manifest: &ModelManifest, sha256: &str, runtime: &str) -> Self {
        ModelId {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: sha256.to_string(),
            runtime: runtime.to_string(),
        }
    }
}

/// A patch classifier: a batch of normalised patches in, raw model outputs out.
///
/// Implementations: the pure-Rust burn network (default, also in WASM) and
/// ONNX Runtime (native, feature `ort`) for any ONNX model with a manifest.
pub trait Classifier: Send + Sync {
    /// The manifest the model was loaded with.
    fn manifest(&self) -> &ModelManifest;

    /// Identity of the loaded model.
    fn id(&self) -> ModelId;

    /// Run `n` patches (`n * patch voxels` values, each patch `z, y, x` row-major)
    /// and return `n * outputs.len()` raw values, row by row, in the manifest's
    /// output order (before activation: apply [`ModelManifest::probabilities`]).
    fn infer(&self, patches: &[f32], n: usize) -> Result<Vec<f32>>;
}
