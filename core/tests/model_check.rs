//! The shipped model (`models/ctt-nodule-v1`) loads in the built-in burn
//! runtime and reproduces the stored outputs of ONNX Runtime on stored test
//! patches (`core/tests/data/model_check`, written by `training/fixtures.py`),
//! so a silent change of the weights or of the loader fails here.
#![cfg(feature = "burn")]

use std::path::{Path, PathBuf};

use ct_triage_core::classify::burn_net::BurnClassifier;
use ct_triage_core::classify::{Classifier, ModelManifest};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn load() -> (BurnClassifier, ModelManifest, Vec<u8>) {
    let path = repo().join("models/ctt-nodule-v1.json");
    let m = ModelManifest::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let w = std::fs::read(repo().join("models").join(m.weights.as_ref().unwrap())).unwrap();
    (BurnClassifier::from_bytes(m.clone(), &w).unwrap(), m, w)
}

#[test]
fn shipped_model_reproduces_stored_outputs() {
    let (model, m, _) = load();
    let dir = repo().join("core/tests/data/model_check");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(
        fx["weights_sha256"].as_str().unwrap(),
        m.weights_sha256.as_deref().unwrap(),
        "fixture was made for other weights: rerun training/fixtures.py"
    );
    let raw = std::fs::read(dir.join("patches_hu.i16")).unwrap();
    let patches: Vec<f32> = raw
        .chunks_exact(2)
        .map(|b| {
            m.input
                .normalization
                .apply(i16::from_le_bytes([b[0], b[1]]) as f32)
        })
        .collect();
    let vox: usize = m.input.patch_zyx.iter().product();
    let n = patches.len() / vox;
    let expected = fx["expected"].as_array().unwrap();
    assert_eq!(n, expected.len());
    let got = model.infer(&patches, n).unwrap();
    let k = m.outputs.len();
    for (i, row) in expected.iter().enumerate() {
        for o in &m.outputs {
            let want = row[o.index].as_f64().unwrap() as f32;
            let pos = m.outputs.iter().position(|q| q.key == o.key).unwrap();
            let v = got[i * k + pos];
            assert!(
                (v - want).abs() < 1e-4,
                "patch {i} {}: {v} vs {want}",
                o.key
            );
        }
    }
    // Probabilities are well formed.
    for row in got.chunks_exact(k) {
        for (_, p) in m.probabilities(row) {
            assert!((0.0..=1.0).contains(&p));
        }
    }
}

#[test]
fn bad_weights_and_input_are_errors() {
    let (model, m, w) = load();
    assert!(model.infer(&[0.0; 7], 1).is_err());
    assert!(model.infer(&[f32::NAN; 32 * 32 * 32], 1).is_err());
    assert!(model.infer(&[], 0).unwrap().is_empty());
    // corrupted bytes: hash mismatch
    let mut bad = w.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert!(BurnClassifier::from_bytes(m.clone(), &bad).is_err());
    // not safetensors at all (no hash to compare)
    let mut m2 = m.clone();
    m2.weights_sha256 = None;
    assert!(BurnClassifier::from_bytes(m2.clone(), b"garbage").is_err());
    // wrong architecture
    let mut m3 = m2;
    m3.architecture = Some("resnet".into());
    assert!(BurnClassifier::from_bytes(m3, &w).is_err());
}
