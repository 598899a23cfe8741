//! Shared fixtures of the ct-triage benchmarks (`cargo bench -p ct-triage-benches`):
//! the bundled sample, a synthetic full-size series made from it, and the model.
//!
//! The synthetic series answers "how fast on a 512×512×300 screening CT": the
//! real lung1 volume (48 slices of 5 mm) is resampled in z to 300 slices of
//! ≈ 0.79 mm with the core's own trilinear resampler and written back as
//! ordinary single-frame CT files (Explicit VR Little Endian, 12-bit stored
//! values), so ingest, the pipeline and the Python comparison all read real
//! DICOM files of realistic size.

/// The allocator of the shipped `ct-triage` binary (see native-server/src/main.rs),
/// so the benches and the comparison binaries measure what users run: mimalloc
/// reuses freed pixel buffers, where glibc would `mmap`/zero-fill each of them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};

use ct_triage_core::classify::{ModelManifest, burn_net::BurnClassifier};
use ct_triage_core::ingest::{self, IngestOptions, InputFile};
use ct_triage_core::progress::NoProgress;
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is inside the repository")
        .to_path_buf()
}

/// Every file of a folder, sorted by name, read into memory.
pub fn read_folder(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            )
        })
        .collect()
}

/// The bundled sample series `sample-dicom/lung1`.
pub fn lung1() -> Vec<(String, Vec<u8>)> {
    read_folder(&repo_root().join("sample-dicom/lung1"))
}

/// Borrow owned files as core inputs.
pub fn inputs(files: &[(String, Vec<u8>)]) -> Vec<InputFile<'_>> {
    files.iter().map(|(n, b)| InputFile::new(n, b)).collect()
}

/// The built-in model from `models/`.
pub fn model() -> BurnClassifier {
    let root = repo_root().join("models");
    let manifest = ModelManifest::from_json(
        &std::fs::read_to_string(root.join("ctt-nodule-v1.json")).expect("manifest"),
    )
    .expect("valid manifest");
    let weights = std::fs::read(root.join("ctt-nodule-v1.safetensors")).expect("weights");
    BurnClassifier::from_bytes(manifest, &weights).expect("model loads")
}

/// A `slices`-slice, 512×512 series made from lung1 (see the crate docs), as
/// in-memory DICOM files named `synth-NNNN.dcm`.
pub fn synthetic_series(slices: usize) -> Vec<(String, Vec<u8>)> {
    let files = lung1();
    let (_, series) =
        ingest::load(&inputs(&files), &IngestOptions::default(), &NoProgress).expect("lung1 loads");
    let g = &series.volume.geometry;
    let extent = g.extent_mm()[2];
    let dz = extent / (slices - 1) as f64;
    let thin = ct_triage_core::resample::to_spacing(
        &series.volume,
        [g.spacing[0], g.spacing[1], dz],
        &NoProgress,
    )
    .expect("resample");
    let template = OpenFileOptions::new()
        .from_reader(std::io::Cursor::new(&files[0].1[128..]))
        .expect("template parses");
    let (nz, ny, nx) = thin.hu.dim();
    (0..nz.min(slices))
        .map(|k| {
            let mut obj = template.clone();
            let uid = format!("2.25.4242{k:06}");
            let p = thin.geometry.voxel_to_patient([0.0, 0.0, k as f64]);
            obj.put(DataElement::new(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(uid.as_str()),
            ));
            obj.put(DataElement::new(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("2.25.424200000000000000000000000001"),
            ));
            obj.put(DataElement::new(
                tags::INSTANCE_NUMBER,
                VR::IS,
                PrimitiveValue::from((k + 1).to_string()),
            ));
            obj.put(DataElement::new(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                dicom_value!(
                    Strs,
                    [
                        format!("{:.4}", p[0]),
                        format!("{:.4}", p[1]),
                        format!("{:.4}", p[2])
                    ]
                ),
            ));
            obj.put(DataElement::new(
                tags::SLICE_THICKNESS,
                VR::DS,
                PrimitiveValue::from(format!("{dz:.4}")),
            ));
            let plane = thin.hu.index_axis(ndarray::Axis(0), k);
            let mut px: Vec<u16> = Vec::with_capacity(ny * nx);
            px.extend(
                plane
                    .iter()
                    .map(|&h| (h as i32 + 1024).clamp(0, 4095) as u16),
            );
            obj.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::U16(px.into()),
            ));
            obj.meta_mut().media_storage_sop_instance_uid = uid.clone();
            // the meta group's length changes with the UID's
            obj.meta_mut().update_information_group_length();
            let mut bytes = Vec::with_capacity(ny * nx * 2 + 4096);
            obj.write_all(&mut bytes).expect("write");
            (format!("synth-{k:04}.dcm"), bytes)
        })
        .collect()
}

/// Write a synthetic series to a folder (for the Python comparison scripts).
pub fn write_series(files: &[(String, Vec<u8>)], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
