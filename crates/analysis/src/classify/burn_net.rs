//! The built-in classifier: network `ctt-cnn3d-v1` written in burn 0.22
//! (flex backend), loading the exported safetensors weights. It runs natively
//! and in `wasm32-unknown-unknown`, without ONNX Runtime.
//!
//! ## Architecture `ctt-cnn3d-v1`
//!
//! Five 3×3×3 convolutions with bias (BatchNorm folded in at export) and ReLU,
//! strides 2, 2, 1, 2, 1 and padding 1; global average pooling over the three
//! spatial axes; one linear layer producing every output column. No 3-D
//! pooling (burn 0.22 has none). The channel counts are read from the weight
//! shapes; the exported ONNX graph computes exactly the same function (see
//! `training/ctt_model.py` and the parity test `core/tests/parity.rs`).
//!
//! Weights (`safetensors`, f32): `conv{1..5}.weight` `[out, in, 3, 3, 3]`,
//! `conv{1..5}.bias` `[out]`, `head.weight` `[outputs, channels]`,
//! `head.bias` `[outputs]`.

use burn::tensor::activation::relu;
use burn::tensor::module::conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use super::manifest::ModelManifest;
use super::{Classifier, ModelId};
use crate::error::{Error, Result};

/// Architecture name this module implements (the manifest's `architecture`).
pub const ARCHITECTURE: &str = "ctt-cnn3d-v1";

/// Strides of the five convolutions.
const STRIDES: [usize; 5] = [2, 2, 1, 2, 1];

/// Largest batch run at once (bounds memory; bigger requests are chunked).
const MAX_CHUNK: usize = 64;

/// One convolution layer's weights.
#[derive(Debug, Clone)]
struct ConvLayer {
    /// `[out, in, 3, 3, 3]`, row-major.
    weight: Vec<f32>,
    /// `[out]`.
    bias: Vec<f32>,
    out_ch: usize,
    in_ch: usize,
    stride: usize,
}

/// `ctt-cnn3d-v1` on burn's flex backend.
#[derive(Debug)]
pub struct BurnClassifier {
    manifest: ModelManifest,
    sha256: String,
    layers: Vec<ConvLayer>,
    /// `[outputs, channels]`, row-major.
    head_w: Vec<f32>,
    head_b: Vec<f32>,
    n_out: usize,
}

fn model_err(m: impl Into<String>) -> Error {
    Error::Model(m.into())
}

fn read_f32(st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = st
        .tensor(name)
        .map_err(|e| model_err(format!("weights: tensor `{name}`: {e}")))?;
    if t.dtype() != Dtype::F32 {
        return Err(model_err(format!(
            "weights: tensor `{name}` is {:?}, expected F32",
            t.dtype()
        )));
    }
    if t.shape() != shape {
        return Err(model_err(format!(
            "weights: tensor `{name}` has shape {:?}, expected {shape:?}",
            t.shape()
        )));
    }
    let data = t.data();
    let v: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(model_err(format!(
            "weights: tensor `{name}` holds non-finite values"
        )));
    }
    Ok(v)
}

fn dims_of(st: &SafeTensors, name: &str) -> Result<Vec<usize>> {
    st.tensor(name)
        .map(|t| t.shape().to_vec())
        .map_err(|e| model_err(format!("weights: tensor `{name}`: {e}")))
}

impl BurnClassifier {
    /// Load weights (safetensors bytes) for `manifest`, whose `architecture`
    /// must be [`ARCHITECTURE`]. When the manifest gives `weights_sha256`, the
    /// bytes must match it.
    pub fn from_bytes(manifest: ModelManifest, weights: &[u8]) -> Result<Self> {
        manifest.validate()?;
        match manifest.architecture.as_deref() {
            Some(ARCHITECTURE) => {}
            other => {
                return Err(model_err(format!(
                    "manifest {}: architecture {other:?} is not {ARCHITECTURE:?} (use the ort backend for other models)",
                    manifest.name
                )));
            }
        }
        let sha256 = hex(&Sha256::digest(weights));
        if let Some(want) = &manifest.weights_sha256
            && !want.eq_ignore_ascii_case(&sha256)
        {
            return Err(model_err(format!(
                "weights SHA-256 {sha256} does not match the manifest's {want}"
            )));
        }
        let st = SafeTensors::deserialize(weights)
            .map_err(|e| model_err(format!("weights: not a safetensors file: {e}")))?;
        let mut layers = Vec::with_capacity(STRIDES.len());
        let mut in_ch = 1usize;
        for (i, &stride) in STRIDES.iter().enumerate() {
            let wname = format!("conv{}.weight", i + 1);
            let d = dims_of(&st, &wname)?;
            if d.len() != 5 || d[2..] != [3, 3, 3] || d[1] != in_ch || d[0] == 0 || d[0] > 4096 {
                return Err(model_err(format!(
                    "weights: `{wname}` has shape {d:?}, expected [out, {in_ch}, 3, 3, 3]"
                )));
            }
            let out_ch = d[0];
            let weight = read_f32(&st, &wname, &d)?;
            let bias = read_f32(&st, &format!("conv{}.bias", i + 1), &[out_ch])?;
            layers.push(ConvLayer {
                weight,
                bias,
                out_ch,
                in_ch,
                stride,
            });
            in_ch = out_ch;
        }
        let n_out = manifest.outputs.len();
        let head_w = read_f32(&st, "head.weight", &[n_out, in_ch])?;
        let head_b = read_f32(&st, "head.bias", &[n_out])?;
        for o in &manifest.outputs {
            if o.index >= n_out {
                return Err(model_err(format!(
                    "output {}: index {} outside the network's {n_out} columns",
                    o.key, o.index
                )));
            }
        }
        Ok(BurnClassifier {
            manifest,
            sha256,
            layers,
            head_w,
            head_b,
            n_out,
        })
    }

    /// Forward `n` patches (already validated) → `n * n_out` raw outputs in network column order.
    fn forward(&self, patches: &[f32], n: usize) -> Result<Vec<f32>> {
        let device = Device::flex();
        let [pz, py, px] = self.manifest.input.patch_zyx;
        let mut x: Tensor<5> = Tensor::from_data(
            TensorData::new(patches.to_vec(), [n, 1, pz, py, px]),
            &device,
        );
        for l in &self.layers {
            let w: Tensor<5> = Tensor::from_data(
                TensorData::new(l.weight.clone(), [l.out_ch, l.in_ch, 3, 3, 3]),
                &device,
            );
            let b: Tensor<1> =
                Tensor::from_data(TensorData::new(l.bias.clone(), [l.out_ch]), &device);
            let opts = ConvOptions::new([l.stride; 3], [1, 1, 1], [1, 1, 1], 1);
            x = relu(conv3d(x, w, Some(b), opts));
        }
        let c = self.layers.last().map_or(1, |l| l.out_ch);
        // global average pooling → [n, c]
        let pooled: Tensor<2> = x.mean_dims(&[2, 3, 4]).reshape([n, c]);
        let hw: Tensor<2> = Tensor::from_data(
            TensorData::new(self.head_w.clone(), [self.n_out, c]),
            &device,
        );
        let hb: Tensor<2> = Tensor::from_data(
            TensorData::new(self.head_b.clone(), [1, self.n_out]),
            &device,
        );
        let y = pooled.matmul(hw.transpose()) + hb;
        let data = y
            .try_into_data()
            .map_err(|e| model_err(format!("burn: reading the output failed: {e:?}")))?;
        data.try_into_vec::<f32>()
            .map_err(|e| model_err(format!("burn: output data: {e:?}")))
    }
}

impl Classifier for BurnClassifier {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    fn id(&self) -> ModelId {
        ModelId {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            sha256: self.sha256.clone(),
            runtime: "burn-flex".into(),
        }
    }

    fn infer(&self, patches: &[f32], n: usize) -> Result<Vec<f32>> {
        let vox: usize = self.manifest.input.patch_zyx.iter().product();
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
        let mut raw = Vec::with_capacity(n * self.n_out);
        let mut start = 0;
        while start < n {
            let m = (n - start).min(MAX_CHUNK);
            raw.extend(self.forward(&patches[start * vox..(start + m) * vox], m)?);
            start += m;
        }
        // Manifest order.
        let cols: Vec<usize> = self.manifest.outputs.iter().map(|o| o.index).collect();
        let mut out = Vec::with_capacity(n * cols.len());
        for row in raw.chunks_exact(self.n_out) {
            out.extend(cols.iter().map(|&c| row[c]));
        }
        Ok(out)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
