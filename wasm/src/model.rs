//! The classifier: the built-in `ctt-cnn3d-v1` network (burn, flex backend).

use ct_triage_core::classify::burn_net::BurnClassifier;
use ct_triage_core::classify::{Classifier, ModelManifest};
use wasm_bindgen::prelude::*;

use crate::error::WasmError;

/// A loaded model: its manifest (`models/<name>.json`) and safetensors weights.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Model {
    classifier: BurnClassifier,
}

#[wasm_bindgen]
impl Model {
    /// Load a model from its manifest JSON and its weights (safetensors bytes).
    /// Fails with code `model` when they are invalid or do not match.
    pub fn load(manifest_json: &str, weights: &[u8]) -> Result<Model, WasmError> {
        let manifest = ModelManifest::from_json(manifest_json)?;
        let classifier = BurnClassifier::from_bytes(manifest, weights)?;
        Ok(Model { classifier })
    }

    /// The model identity recorded in reports: `{name, version, sha256, runtime}` as JSON.
    #[wasm_bindgen(js_name = idJson)]
    pub fn id_json(&self) -> Result<String, WasmError> {
        serde_json::to_string(&self.classifier.id()).map_err(WasmError::output)
    }
}

impl Model {
    /// The classifier, for the pipeline.
    pub fn classifier(&self) -> &dyn Classifier {
        &self.classifier
    }
}
