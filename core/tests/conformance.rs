//! Conformance: every file of `tests/data/conformance/manifest.json` decodes to
//! the stored values pydicom reports (exactly for lossless transfer syntaxes,
//! closely for lossy ones) or fails with a typed error. Runs natively and,
//! through `wasm-bindgen-test`, under wasm32.

use ct_triage_core::ingest::{self, IngestOptions, InputFile, Limits};
use ct_triage_core::progress::NoProgress;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
// openjp2 (JPEG 2000) needs malloc & co., which wasm32-unknown-unknown lacks.
#[cfg(target_arch = "wasm32")]
use ct_triage_wasm_libc as _;

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../tests/data/conformance/", $name)) as &[u8])),*]
    };
}

/// Every file of the manifest, embedded so that the wasm32 build needs no filesystem.
const FILES: &[(&str, &[u8])] = files!(
    "693_J2KI.dcm",
    "693_J2KR.dcm",
    "693_UNCI.dcm",
    "693_UNCR.dcm",
    "CT_small.dcm",
    "J2K_pixelrep_mismatch.dcm",
    "JPEG-LL.dcm",
    "JPEG-lossy.dcm",
    "JPEG2000.dcm",
    "JPGExtended.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
    "MR_truncated.dcm",
    "bad_sequence.dcm",
    "eCT_Supplemental.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_big_endian.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "explicit_VR-UN.dcm",
    "image_dfl.dcm",
    "meta_missing_tsyntax.dcm",
    "no_meta.dcm",
    "rtplan_truncated.dcm",
    "test-SR.dcm",
);

const MANIFEST: &str = include_str!("../../tests/data/conformance/manifest.json");

const LOSSY: [&str; 3] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.91",
];
/// Files pydicom (pylibjpeg) cannot decode but which we decode, with the twin
/// whose reference values they must match. JPEG-lossy.dcm differs from
/// JPGExtended.dcm only by Se=0 in its scan header, which IJG libjpeg and dcmtk
/// ignore as we do.
const DECODED_BEYOND_PYDICOM: [(&str, &str); 1] = [("JPEG-lossy.dcm", "JPGExtended.dcm")];

fn bytes_of(name: &str) -> &'static [u8] {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap_or_else(|| panic!("{name} not embedded"))
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Outcome of one manifest entry, for the summary.
fn check(entry: &Value, manifest: &[Value]) -> Result<String, String> {
    let name = entry["file"].as_str().unwrap();
    let ts = entry["transfer_syntax"].as_str().unwrap_or("");
    let input = InputFile::new(name, bytes_of(name));
    let result = ingest::decode_stored(input, &Limits::default());
    let twin = DECODED_BEYOND_PYDICOM
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, t)| *t);
    let decoded = match twin {
        Some(t) => manifest
            .iter()
            .find(|e| e["file"] == t)
            .and_then(|e| e.get("decoded")),
        None => entry.get("decoded").filter(|d| !d.is_null()),
    };
    let pydicom_error = entry.get("error").and_then(|e| e.as_str());
    match (decoded, result) {
        (Some(d), Ok(px)) => {
            let want = d["sha256_le"].as_str().unwrap();
            let got = sha256_hex(&px.le_bytes());
            let n = px.values.len() as f64;
            let min = *px.values.iter().min().unwrap() as f64;
            let max = *px.values.iter().max().unwrap() as f64;
            let mean = px.values.iter().map(|&v| v as f64).sum::<f64>() / n;
            let shape: Vec<u64> = d["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let want_n: u64 = shape.iter().product();
            if want_n != px.values.len() as u64 {
                return Err(format!(
                    "{name}: {} values, pydicom has {want_n}",
                    px.values.len()
                ));
            }
            if got == want {
                return Ok(format!("{name}: exact"));
            }
            if LOSSY.contains(&ts) {
                let (wmin, wmax, wmean) = (
                    d["min"].as_f64().unwrap(),
                    d["max"].as_f64().unwrap(),
                    d["mean"].as_f64().unwrap(),
                );
                let range = (wmax - wmin).max(1.0);
                let close = (mean - wmean).abs() <= 0.01 * range
                    && (min - wmin).abs() <= 0.05 * range
                    && (max - wmax).abs() <= 0.05 * range;
                return if close {
                    Ok(format!(
                        "{name}: lossy, close (mean {mean:.2} vs {wmean:.2})"
                    ))
                } else {
                    Err(format!(
                        "{name}: lossy decode too far: min/max/mean {min}/{max}/{mean:.2} vs {wmin}/{wmax}/{wmean:.2}"
                    ))
                };
            }
            Err(format!(
                "{name}: lossless decode differs: sha {got} != {want} (min {min} max {max} mean {mean:.3})"
            ))
        }
        (Some(_), Err(e)) => Err(format!("{name}: pydicom decodes it, we fail: {e}")),
        (None, Ok(_)) if pydicom_error.is_some() => Err(format!(
            "{name}: pydicom fails ({}), we decode",
            pydicom_error.unwrap()
        )),
        (None, Ok(_)) => Err(format!(
            "{name}: no pixel data expected, but we decoded some"
        )),
        (None, Err(e)) => {
            // Broken or non-image: must be a typed error with a message naming the file.
            let msg = e.to_string();
            if !msg.contains(name) {
                return Err(format!("{name}: error does not name the file: {msg}"));
            }
            Ok(format!("{name}: typed error {} ({msg})", e.code()))
        }
    }
}

#[test]
fn every_manifest_file_behaves_as_expected() {
    let manifest: Vec<Value> = serde_json::from_str(MANIFEST).unwrap();
    assert_eq!(
        manifest.len(),
        FILES.len(),
        "every manifest file is embedded"
    );
    let mut failures = Vec::new();
    for entry in &manifest {
        match check(entry, &manifest) {
            Ok(line) => println!("ok   {line}"),
            Err(line) => {
                println!("FAIL {line}");
                failures.push(line);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn inventory_skips_non_images_with_reasons() {
    let files: Vec<InputFile> = FILES.iter().map(|(n, b)| InputFile::new(n, b)).collect();
    let scan = ingest::scan(&files, &IngestOptions::default(), &NoProgress).unwrap();
    let inv = scan.inventory();
    let skipped = |name: &str| inv.skipped.iter().find(|s| s.path == name).cloned();
    let sr = skipped("test-SR.dcm").expect("SR skipped");
    assert_eq!(sr.code, "not_an_image", "{sr:?}");
    let rt = skipped("rtplan_truncated.dcm").expect("RT plan skipped");
    assert!(!rt.reason.is_empty());
    let nd = skipped("meta_missing_tsyntax.dcm").expect("broken meta skipped");
    assert!(!nd.reason.is_empty());
    // Many tiny single-slice series: none is a CT volume of >= 16 slices.
    assert!(inv.selected.is_none(), "{:?}", inv.selected);
    let err = scan
        .load(&IngestOptions::default(), &NoProgress)
        .unwrap_err();
    assert_eq!(err.code(), "no_series", "{err}");
}
