//! Choosing and loading the classifier: the built-in model embedded in the
//! binary, or a model a hospital brings with a manifest (`--model`).
//!
//! A manifest naming a built-in `architecture` (e.g. `ctt-cnn3d-v1`) runs on
//! the pure-Rust burn network with the safetensors weights next to it; a
//! manifest without one is an ONNX model run by ONNX Runtime (feature `ort`,
//! library from `ORT_DYLIB_PATH`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ct_triage_core::classify::burn_net::{ARCHITECTURE, BurnClassifier};
use ct_triage_core::classify::{Classifier, ModelManifest};

use crate::error::{NativeError, Result};

/// The built-in model (manifest JSON, safetensors weights) compiled into the
/// binary, when `models/ctt-nodule-v1.*` existed at build time.
#[cfg(ctt_embedded_model)]
pub const EMBEDDED: Option<(&str, &[u8])> = Some((
    include_str!(concat!(env!("CTT_MODEL_DIR"), "/ctt-nodule-v1.json")),
    include_bytes!(concat!(env!("CTT_MODEL_DIR"), "/ctt-nodule-v1.safetensors")),
));

/// The built-in model (manifest JSON, safetensors weights) compiled into the
/// binary; `None`: this build has none and needs `--model`.
#[cfg(not(ctt_embedded_model))]
pub const EMBEDDED: Option<(&str, &[u8])> = None;

/// Which model to load.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ModelChoice {
    /// The model embedded in the binary.
    #[default]
    BuiltIn,
    /// A model manifest (JSON) on disk; weights or ONNX file relative to it.
    Manifest(PathBuf),
}

impl ModelChoice {
    /// `--model` given or not.
    pub fn from_arg(arg: Option<PathBuf>) -> Self {
        arg.map_or(ModelChoice::BuiltIn, ModelChoice::Manifest)
    }
}

/// A loaded classifier, shareable between worker threads.
pub type SharedClassifier = Arc<dyn Classifier>;

/// Load the chosen model.
pub fn load(choice: &ModelChoice) -> Result<SharedClassifier> {
    match choice {
        ModelChoice::BuiltIn => {
            let (json, weights) = EMBEDDED.ok_or_else(|| {
                NativeError::Config(
                    "this build has no embedded model (models/ctt-nodule-v1.json and .safetensors \
                     were missing at build time): pass --model <manifest.json>"
                        .into(),
                )
            })?;
            let manifest = ModelManifest::from_json(json)?;
            Ok(Arc::new(BurnClassifier::from_bytes(manifest, weights)?))
        }
        ModelChoice::Manifest(path) => load_manifest(path),
    }
}

/// Load a model from its manifest file.
fn load_manifest(path: &Path) -> Result<SharedClassifier> {
    let text = std::fs::read_to_string(path).map_err(|e| NativeError::io(path, e))?;
    let manifest = ModelManifest::from_json(&text)?;
    match manifest.architecture.as_deref() {
        Some(arch) if arch == ARCHITECTURE => {
            let rel = manifest.weights.clone().ok_or_else(|| {
                NativeError::Config(format!(
                    "{}: architecture {arch} needs a `weights` file",
                    path.display()
                ))
            })?;
            let wpath = path.parent().unwrap_or(Path::new(".")).join(rel);
            let weights = std::fs::read(&wpath).map_err(|e| NativeError::io(&wpath, e))?;
            Ok(Arc::new(BurnClassifier::from_bytes(manifest, &weights)?))
        }
        Some(other) => Err(NativeError::Config(format!(
            "{}: unknown built-in architecture {other:?} (this build knows {ARCHITECTURE:?}; \
             omit `architecture` to run the ONNX file with ONNX Runtime)",
            path.display()
        ))),
        None => load_onnx(path),
    }
}

#[cfg(feature = "ort")]
fn load_onnx(path: &Path) -> Result<SharedClassifier> {
    Ok(Arc::new(
        ct_triage_core::classify::ort::OrtClassifier::load(path)?,
    ))
}

#[cfg(not(feature = "ort"))]
fn load_onnx(path: &Path) -> Result<SharedClassifier> {
    Err(NativeError::Config(format!(
        "{}: ONNX models need a build with the `ort` feature",
        path.display()
    )))
}
