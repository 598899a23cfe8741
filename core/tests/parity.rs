//! Parity of the two classifier runtimes: the built-in burn network and ONNX
//! Runtime agree within 1e-4 on fixed patches (from the real lung1 CT and
//! generated ones), for the shipped model `models/ctt-nodule-v1`.
//!
//! Needs feature `ort` and `ORT_DYLIB_PATH` (`export ORT_DYLIB_PATH="$(scripts/ort-lib.sh)"`):
//! `cargo test -p ct-triage-core --features ort --test parity`.
#![cfg(all(feature = "ort", feature = "burn"))]

use std::path::{Path, PathBuf};

use ct_triage_core::classify::burn_net::BurnClassifier;
use ct_triage_core::classify::ort::OrtClassifier;
use ct_triage_core::classify::{Classifier, ModelManifest, extract_patch};
use ct_triage_core::ingest::{self, IngestOptions, InputFile};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::resample::to_isotropic;
use ct_triage_core::volume::{Geometry, Volume};
use ndarray::Array3;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn manifest_path() -> PathBuf {
    std::env::var_os("CTT_MODEL_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models/ctt-nodule-v1.json"))
}

fn burn_model(path: &Path) -> BurnClassifier {
    let m = ModelManifest::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
    let w = std::fs::read(path.parent().unwrap().join(m.weights.as_ref().unwrap())).unwrap();
    BurnClassifier::from_bytes(m, &w).unwrap()
}

/// Patches around lung1's lesion and a few other positions of the real CT.
fn lung1_patches(m: &ModelManifest) -> Vec<f32> {
    let dir = repo().join("sample-dicom/lung1");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    let inputs: Vec<InputFile> = files.iter().map(|(n, b)| InputFile::new(n, b)).collect();
    let (_, series) = ingest::load(&inputs, &IngestOptions::default(), &NoProgress).unwrap();
    let iso = to_isotropic(&series.volume, m.input.spacing_mm, &NoProgress).unwrap();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("sample-dicom/lung1.truth.json")).unwrap(),
    )
    .unwrap();
    let c = &truth["lesions"][0]["centroid_lps_mm"];
    let lesion = iso
        .geometry
        .patient_to_voxel([0, 1, 2].map(|a| c[a].as_f64().unwrap()));
    let mut out = Vec::new();
    for centre in [
        lesion,
        [lesion[0] + 3.0, lesion[1] - 2.0, lesion[2] + 1.0],
        [200.0, 180.0, 120.0],
        [100.0, 150.0, 60.0],
        [0.0, 0.0, 0.0],
    ] {
        out.extend(extract_patch(
            &iso,
            centre,
            m.input.patch_zyx,
            &m.input.normalization,
        ));
    }
    out
}

/// Generated patches: a solid sphere, a tube, a calcified blob, noise.
fn generated_patches(m: &ModelManifest) -> Vec<f32> {
    let n = 48usize;
    let geometry = Geometry {
        size: [n, n, n],
        spacing: [1.0; 3],
        origin: [0.0; 3],
        direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };
    let mut out = Vec::new();
    let mut state = 12345u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 60.0
    };
    for case in 0..4 {
        let mut hu = Array3::<i16>::zeros((n, n, n));
        for ((z, y, x), v) in hu.indexed_iter_mut() {
            let (fx, fy, fz) = (x as f64 - 24.0, y as f64 - 24.0, z as f64 - 24.0);
            let r = (fx * fx + fy * fy + fz * fz).sqrt();
            let base = -850.0 + noise();
            let val = match case {
                0 if r < 5.0 => 30.0,
                1 if (fx * fx + fy * fy).sqrt() < 2.5 => 150.0,
                2 if r < 4.0 => 600.0,
                _ => base,
            };
            *v = val as i16;
        }
        let vol = Volume {
            hu,
            geometry: geometry.clone(),
        };
        out.extend(extract_patch(
            &vol,
            [24.0; 3],
            m.input.patch_zyx,
            &m.input.normalization,
        ));
    }
    out
}

#[test]
fn burn_and_ort_agree() {
    let path = manifest_path();
    let burn = burn_model(&path);
    let ort = OrtClassifier::load(&path)
        .unwrap_or_else(|e| panic!("{e} — export ORT_DYLIB_PATH=\"$(scripts/ort-lib.sh)\""));
    assert_eq!(
        burn.id().sha256,
        burn.manifest().weights_sha256.clone().unwrap()
    );
    let m = burn.manifest().clone();
    let vox: usize = m.input.patch_zyx.iter().product();
    let mut patches = lung1_patches(&m);
    patches.extend(generated_patches(&m));
    let n = patches.len() / vox;
    let a = burn.infer(&patches, n).unwrap();
    let b = ort.infer(&patches, n).unwrap();
    assert_eq!(a.len(), n * m.outputs.len());
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("{n} patches, max |burn - ort| = {max:e}");
    assert!(max < 1e-4, "burn and ort differ by {max}");
    // Batch size does not change results (one patch at a time).
    for i in [0, n - 1] {
        let one = burn.infer(&patches[i * vox..(i + 1) * vox], 1).unwrap();
        let k = m.outputs.len();
        for (x, y) in one.iter().zip(&a[i * k..(i + 1) * k]) {
            assert!((x - y).abs() < 1e-4);
        }
    }
}

#[test]
fn ort_rejects_a_wrong_hash_and_bad_input() {
    let path = manifest_path();
    let ort = OrtClassifier::load(&path).unwrap();
    assert!(ort.infer(&[0.0; 10], 1).is_err());
    assert!(ort.infer(&[], 0).unwrap().is_empty());
    let mut m = ort.manifest().clone();
    m.onnx_sha256 = "00".repeat(32);
    let bytes = std::fs::read(path.parent().unwrap().join(&m.onnx)).unwrap();
    let e = OrtClassifier::from_bytes(m, &bytes, None).unwrap_err();
    assert!(e.to_string().contains("SHA-256"), "{e}");
}
