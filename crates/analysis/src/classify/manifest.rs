//! The model manifest: everything the pipeline needs to feed a model and read
//! its outputs, so that training and inference never disagree.
//!
//! A manifest is JSON next to the model file. Hospitals can bring their own
//! ONNX model by writing a manifest for it (native server, `ort` feature).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the manifest format this build reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// How HU are mapped to the network's input values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// HU below `hu_window[0]` and above `hu_window[1]` are clipped.
    pub hu_window: [f32; 2],
    /// After clipping, `value = (hu - offset) / scale`.
    pub offset: f32,
    /// See `offset`.
    pub scale: f32,
}

impl Normalization {
    /// Map one HU value to a network input value.
    #[inline]
    pub fn apply(&self, hu: f32) -> f32 {
        (hu.clamp(self.hu_window[0], self.hu_window[1]) - self.offset) / self.scale
    }
}

/// The model input: a single-channel cube of resampled CT around a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// ONNX input name.
    pub name: String,
    /// Patch size in voxels `[z, y, x]`; the tensor is `[batch, 1, z, y, x]`.
    pub patch_zyx: [usize; 3],
    /// Isotropic voxel spacing of the patch in mm (the pipeline resamples to it).
    pub spacing_mm: f64,
    /// HU → input value mapping.
    pub normalization: Normalization,
}

/// What one output column means and how to turn it into a probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Output key used by the pipeline: `nodule` and `malignancy` are required;
    /// others (e.g. `solid`, `part_solid`, `ground_glass`, `calcified`, `spiculation`) are optional.
    pub key: String,
    /// ONNX output tensor name.
    pub tensor: String,
    /// Column in that tensor (`[batch, columns]`).
    pub index: usize,
    /// `sigmoid` (a logit), `softmax:<group>` (a logit in a softmax group) or `identity` (already a probability).
    pub activation: String,
    /// Plain-language meaning.
    pub meaning: String,
}

/// A model manifest (`models/<name>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Manifest format version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// Model name, e.g. `ctt-nodule-v1`.
    pub name: String,
    /// Model version.
    pub version: String,
    /// ONNX file name, relative to the manifest.
    pub onnx: String,
    /// SHA-256 of the ONNX file (hex).
    pub onnx_sha256: String,
    /// Built-in architecture that can run these weights without ONNX Runtime
    /// (e.g. `ctt-cnn3d-v1`), or `None` for models that need the `ort` backend.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Weights for the built-in architecture (safetensors), relative to the manifest.
    #[serde(default)]
    pub weights: Option<String>,
    /// SHA-256 of the weights file (hex).
    #[serde(default)]
    pub weights_sha256: Option<String>,
    /// The input.
    pub input: InputSpec,
    /// The outputs.
    pub outputs: Vec<OutputSpec>,
    /// Minimum nodule probability for a candidate to become a finding.
    pub nodule_threshold: f32,
    /// Free-form training description (data, hash, split, seed).
    #[serde(default)]
    pub training: serde_json::Value,
    /// Held-out metrics as measured by the evaluation command.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Intended use and limits, one sentence each.
    #[serde(default)]
    pub intended_use: Vec<String>,
}

impl ModelManifest {
    /// Parse and validate a manifest.
    pub fn from_json(s: &str) -> Result<Self> {
        let m: ModelManifest =
            serde_json::from_str(s).map_err(|e| Error::Model(format!("manifest: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// Check the manifest is usable by this pipeline.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(format!("manifest {}: {m}", self.name)));
        if self.format != MANIFEST_FORMAT {
            return bad(format!(
                "format {} (this build reads {MANIFEST_FORMAT})",
                self.format
            ));
        }
        let p = self.input.patch_zyx;
        if p.iter().any(|&d| !(8..=128).contains(&d)) {
            return bad(format!("patch size {p:?} outside 8..=128"));
        }
        if !(0.25..=4.0).contains(&self.input.spacing_mm) {
            return bad(format!(
                "spacing {} mm outside 0.25..=4",
                self.input.spacing_mm
            ));
        }
        let n = &self.input.normalization;
        if n.hu_window[0] >= n.hu_window[1]
            || n.hu_window.iter().any(|v| v.is_nan())
            || n.scale == 0.0
            || !n.scale.is_finite()
        {
            return bad("invalid normalisation".into());
        }
        for key in ["nodule", "malignancy"] {
            if !self.outputs.iter().any(|o| o.key == key) {
                return bad(format!("no `{key}` output"));
            }
        }
        for o in &self.outputs {
            let ok = o.activation == "sigmoid"
                || o.activation == "identity"
                || o.activation.starts_with("softmax:");
            if !ok {
                return bad(format!("output {}: activation {}", o.key, o.activation));
            }
        }
        if !(0.0..=1.0).contains(&self.nodule_threshold) {
            return bad("nodule_threshold outside 0..1".into());
        }
        Ok(())
    }

    /// Check a batch for [`Classifier::infer`](super::Classifier::infer), the
    /// same for every backend: `n` patches of the manifest's size, finite
    /// values. Returns the voxels per patch.
    pub fn check_patches(&self, patches: &[f32], n: usize) -> Result<usize> {
        let vox: usize = self.input.patch_zyx.iter().product();
        let expected = n
            .checked_mul(vox)
            .ok_or_else(|| Error::InvalidArgument(format!("{n} patches overflow")))?;
        if patches.len() != expected {
            return Err(Error::InvalidArgument(format!(
                "{} values for {n} patches of {vox} voxels",
                patches.len()
            )));
        }
        if patches.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(
                "patches hold non-finite values".into(),
            ));
        }
        Ok(vox)
    }

    /// Turn one row of raw outputs (one per [`OutputSpec`], in order) into probabilities by key.
    pub fn probabilities(&self, raw: &[f32]) -> Vec<(String, f32)> {
        let mut out = Vec::with_capacity(self.outputs.len());
        for (o, &v) in self.outputs.iter().zip(raw) {
            let p = match o.activation.as_str() {
                "sigmoid" => 1.0 / (1.0 + (-v).exp()),
                "identity" => v,
                group => {
                    // softmax over every output of the same group
                    let members: Vec<f32> = self
                        .outputs
                        .iter()
                        .zip(raw)
                        .filter(|(q, _)| q.activation == group)
                        .map(|(_, &r)| r)
                        .collect();
                    let m = members.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = members.iter().map(|&r| (r - m).exp()).sum();
                    (v - m).exp() / sum
                }
            };
            out.push((o.key.clone(), p.clamp(0.0, 1.0)));
        }
        out
    }
}
