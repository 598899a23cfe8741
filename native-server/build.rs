//! Embeds the built-in model when `models/ctt-nodule-v1.{json,safetensors}` exist.
//!
//! Sets the cfg `ctt_embedded_model` and the env `CTT_MODEL_DIR` (absolute path
//! of `models/`); without the files the binary is built without an embedded
//! model and needs `--model`.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ctt_embedded_model)");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let models = Path::new(&manifest_dir).join("../models");
    // The folder's mtime changes when the model files appear or are replaced.
    println!("cargo::rerun-if-changed={}", models.display());
    let json = models.join("ctt-nodule-v1.json");
    let weights = models.join("ctt-nodule-v1.safetensors");
    if json.is_file() && weights.is_file() {
        println!("cargo::rerun-if-changed={}", json.display());
        println!("cargo::rerun-if-changed={}", weights.display());
        let dir = models.canonicalize().expect("models/ exists");
        println!("cargo::rustc-env=CTT_MODEL_DIR={}", dir.display());
        println!("cargo::rustc-cfg=ctt_embedded_model");
    }
}
