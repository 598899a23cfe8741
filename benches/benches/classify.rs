//! Classifier throughput (patches/s) of the shipped model: the built-in burn
//! network (flex backend) and ONNX Runtime, at batch 1, 32 and 64.
//!
//! `export ORT_DYLIB_PATH="$(scripts/ort-lib.sh)"` then
//! `cargo bench -p ct-triage-benches --features ort --bench classify` (without
//! the feature, or when the library cannot be loaded, only burn is measured). Set the allocator tuning of
//! TOOLCHAIN.md for representative numbers:
//! `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4000000000 MALLOC_TOP_PAD_=536870912`.

use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ct_triage_core::classify::burn_net::BurnClassifier;
use ct_triage_core::classify::{Classifier, ModelManifest};

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("models/ctt-nodule-v1.json")
}

/// Deterministic lung-like patches (values in the network's input range).
fn patches(n: usize, vox: usize) -> Vec<f32> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..n * vox)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            -0.8 + 0.3 * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let path = manifest_path();
    let m = ModelManifest::from_json(
        &std::fs::read_to_string(&path).expect("models/ctt-nodule-v1.json"),
    )
    .expect("manifest");
    let weights = std::fs::read(path.parent().unwrap().join(m.weights.as_ref().unwrap())).unwrap();
    let burn = BurnClassifier::from_bytes(m.clone(), &weights).expect("burn model");
    #[cfg_attr(not(feature = "ort"), allow(unused_mut))]
    let mut models: Vec<(&str, Box<dyn Classifier>)> = vec![("burn", Box::new(burn))];
    #[cfg(feature = "ort")]
    match ct_triage_core::classify::ort::OrtClassifier::load(&path) {
        Ok(o) => models.push(("ort", Box::new(o))),
        Err(e) => eprintln!("skipping ort: {e}"),
    }
    let vox: usize = m.input.patch_zyx.iter().product();
    let mut g = c.benchmark_group("classify");
    g.sample_size(10);
    for batch in [1usize, 32, 64] {
        let p = patches(batch, vox);
        g.throughput(Throughput::Elements(batch as u64));
        for (name, model) in &models {
            g.bench_with_input(BenchmarkId::new(*name, batch), &p, |b, p| {
                b.iter(|| model.infer(p, batch).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
