//! ONNX Runtime classifier (feature `ort`, native only): runs any ONNX model
//! described by a manifest — hospitals can bring their own model.
//!
//! ONNX Runtime is loaded at run time (ort's `load-dynamic`): from an explicit
//! path, or from `ORT_DYLIB_PATH` (e.g. the `libonnxruntime.so.1.31.1` of the
//! PyPI `onnxruntime==1.31.1` wheel, see `scripts/ort-lib.sh`). Nothing is
//! downloaded. A missing or incompatible library is an [`Error::Model`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use sha2::{Digest, Sha256};

use super::manifest::ModelManifest;
use super::{Classifier, ModelId};
use crate::error::{Error, Result};

/// The process-wide ONNX Runtime environment (the library can be loaded once).
static ENV: OnceLock<std::result::Result<(PathBuf, Environment), String>> = OnceLock::new();

fn environment(lib: Option<&Path>) -> Result<Environment> {
    let r = ENV.get_or_init(|| {
        let path = match lib {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("ORT_DYLIB_PATH") {
                Some(p) if !p.is_empty() => PathBuf::from(p),
                _ => {
                    return Err(
                        "ONNX Runtime library not given: set ORT_DYLIB_PATH to libonnxruntime.so (scripts/ort-lib.sh prints it)"
                            .to_string(),
                    );
                }
            },
        };
        if !path.is_file() {
            return Err(format!("ONNX Runtime library {} does not exist", path.display()));
        }
        let env = ort::init_from(&path)
            .map_err(|e| format!("loading ONNX Runtime from {}: {e}", path.display()))?
            .with_name("ct-triage")
            .build()
            .map_err(|e| format!("ONNX Runtime environment: {e}"))?;
        Ok((path, env))
    });
    match r {
        Ok((loaded, env)) => {
            if let Some(p) = lib
                && p != loaded
            {
                return Err(Error::Model(format!(
                    "ONNX Runtime already loaded from {}; cannot load {} too",
                    loaded.display(),
                    p.display()
                )));
            }
            Ok(env.clone())
        }
        Err(e) => Err(Error::Model(e.clone())),
    }
}

/// Where each manifest output is found: `(output tensor position, column)`.
type Column = (usize, usize);

/// An ONNX model with its manifest, run by ONNX Runtime on the CPU.
pub struct OrtClassifier {
    manifest: ModelManifest,
    sha256: String,
    session: Mutex<Session>,
    /// Output tensor names the model must produce, in run order.
    tensors: Vec<String>,
    columns: Vec<Column>,
}

impl std::fmt::Debug for OrtClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtClassifier")
            .field("model", &self.manifest.name)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl OrtClassifier {
    /// Load the manifest at `manifest_path` and the ONNX file it names (relative
    /// to the manifest), with ONNX Runtime from `ORT_DYLIB_PATH`.
    pub fn load(manifest_path: &Path) -> Result<Self> {
        Self::load_with_library(manifest_path, None)
    }

    /// As [`OrtClassifier::load`], with ONNX Runtime from `library` when given.
    pub fn load_with_library(manifest_path: &Path, library: Option<&Path>) -> Result<Self> {
        let text = std::fs::read_to_string(manifest_path)
            .map_err(|e| Error::Model(format!("{}: {e}", manifest_path.display())))?;
        let manifest = ModelManifest::from_json(&text)?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let onnx_path = dir.join(&manifest.onnx);
        let bytes = std::fs::read(&onnx_path)
            .map_err(|e| Error::Model(format!("{}: {e}", onnx_path.display())))?;
        Self::from_bytes(manifest, &bytes, library)
    }

    /// Build from a manifest and the ONNX bytes. The bytes must match the
    /// manifest's `onnx_sha256` when it is not empty.
    pub fn from_bytes(
        manifest: ModelManifest,
        onnx: &[u8],
        library: Option<&Path>,
    ) -> Result<Self> {
        manifest.validate()?;
        let sha256 = format!("{:x}", Sha256::digest(onnx));
        if !manifest.onnx_sha256.is_empty() && !manifest.onnx_sha256.eq_ignore_ascii_case(&sha256) {
            return Err(Error::Model(format!(
                "ONNX SHA-256 {sha256} does not match the manifest's {}",
                manifest.onnx_sha256
            )));
        }
        let env = environment(library)?;
        let ort_err =
            |what: &str, e: &dyn std::fmt::Display| Error::Model(format!("ort: {what}: {e}"));
        let session = Session::builder(&env)
            .map_err(|e| ort_err("session builder", &e))?
            .with_intra_threads(2)
            .map_err(|e| ort_err("threads", &e))?
            .commit_from_memory(onnx)
            .map_err(|e| ort_err("loading the model", &e))?;
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        if !inputs.iter().any(|n| n == &manifest.input.name) {
            return Err(Error::Model(format!(
                "model has no input `{}` (inputs: {inputs:?})",
                manifest.input.name
            )));
        }
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let mut tensors: Vec<String> = Vec::new();
        let mut columns = Vec::new();
        for o in &manifest.outputs {
            if !outputs.contains(&o.tensor) {
                return Err(Error::Model(format!(
                    "output {}: model has no tensor `{}` (outputs: {outputs:?})",
                    o.key, o.tensor
                )));
            }
            let t = match tensors.iter().position(|t| t == &o.tensor) {
                Some(t) => t,
                None => {
                    tensors.push(o.tensor.clone());
                    tensors.len() - 1
                }
            };
            columns.push((t, o.index));
        }
        Ok(OrtClassifier {
            manifest,
            sha256,
            session: Mutex::new(session),
            tensors,
            columns,
        })
    }
}

impl Classifier for OrtClassifier {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    fn id(&self) -> ModelId {
        ModelId::of(&self.manifest, &self.sha256, "ort")
    }

    fn infer(&self, patches: &[f32], n: usize) -> Result<Vec<f32>> {
        let [pz, py, px] = self.manifest.input.patch_zyx;
        self.manifest.check_patches(patches, n)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let input = Tensor::from_array(([n, 1, pz, py, px], patches.to_vec()))
            .map_err(|e| Error::Model(format!("ort: input tensor: {e}")))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| Error::Model("ort: session lock poisoned".into()))?;
        let outputs = session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(|e| Error::Model(format!("ort: run: {e}")))?;
        // Each needed output tensor as (columns, values), checked to be [n, columns].
        let mut data: Vec<(usize, Vec<f32>)> = Vec::with_capacity(self.tensors.len());
        for name in &self.tensors {
            let v = outputs
                .get(name.as_str())
                .ok_or_else(|| Error::Model(format!("ort: no output `{name}`")))?;
            let (shape, values) = v
                .try_extract_tensor::<f32>()
                .map_err(|e| Error::Model(format!("ort: output `{name}`: {e}")))?;
            let dims: Vec<i64> = shape.iter().copied().collect();
            let cols = match dims.as_slice() {
                [b, c] if *b as usize == n => *c as usize,
                [b] if *b as usize == n => 1,
                _ => {
                    return Err(Error::Model(format!(
                        "ort: output `{name}` has shape {dims:?}, expected [{n}, columns]"
                    )));
                }
            };
            data.push((cols, values.to_vec()));
        }
        let mut out = Vec::with_capacity(n * self.columns.len());
        for row in 0..n {
            for &(t, c) in &self.columns {
                let (cols, values) = &data[t];
                if c >= *cols {
                    return Err(Error::Model(format!(
                        "ort: output column {c} outside `{}` ({cols} columns)",
                        self.tensors[t]
                    )));
                }
                out.push(values[row * cols + c]);
            }
        }
        Ok(out)
    }
}
