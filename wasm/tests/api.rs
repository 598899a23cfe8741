//! The wasm crate's API: inputs, scan/inspect/analyze error codes, models,
//! JPEG 2000 through the C allocation shim, rayon on one thread. Runs natively
//! (`cargo test -p ct-triage-wasm`) and under wasm32 with wasm-bindgen-test
//! (`wasm/test.sh`, Node or headless Chromium).

use ct_triage_wasm::{FileSet, Model, analyze, inspect, scan};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const CT_SMALL: &[u8] = include_bytes!("../../tests/data/conformance/CT_small.dcm");
const J2K: &[u8] = include_bytes!("../../tests/data/conformance/693_J2KR.dcm");
const J2K_REF: &[u8] = include_bytes!("../../tests/data/conformance/693_UNCR.dcm");
const SR: &[u8] = include_bytes!("../../tests/data/conformance/test-SR.dcm");

fn files(list: &[(&str, &[u8])]) -> FileSet {
    let mut set = FileSet::new();
    for (n, b) in list {
        set.add(n.to_string(), b.to_vec());
    }
    set
}

/// A tiny valid `ctt-cnn3d-v1` model: 2 channels per layer, zero weights, so
/// every output is its bias. Safetensors written by hand.
fn tiny_model() -> Model {
    let mut tensors: Vec<(String, Vec<usize>)> = Vec::new();
    let mut in_ch = 1;
    for i in 1..=5 {
        tensors.push((format!("conv{i}.weight"), vec![2, in_ch, 3, 3, 3]));
        tensors.push((format!("conv{i}.bias"), vec![2]));
        in_ch = 2;
    }
    tensors.push(("head.weight".into(), vec![7, 2]));
    tensors.push(("head.bias".into(), vec![7]));
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in &tensors {
        let n: usize = shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&h);
    bytes.extend(std::iter::repeat_n(0u8, offset));
    let outputs: Vec<serde_json::Value> = [
        ("nodule", "sigmoid"),
        ("malignancy", "sigmoid"),
        ("solid", "softmax:type"),
        ("part_solid", "softmax:type"),
        ("ground_glass", "softmax:type"),
        ("calcified", "sigmoid"),
        ("spiculation", "sigmoid"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (k, a))| serde_json::json!({"key": k, "tensor": "logits", "index": i, "activation": a, "meaning": k}))
    .collect();
    let manifest = serde_json::json!({
        "format": 1, "name": "tiny", "version": "0", "onnx": "tiny.onnx", "onnx_sha256": "",
        "architecture": "ctt-cnn3d-v1", "weights": "tiny.safetensors",
        "input": {"name": "patch", "patch_zyx": [32, 32, 32], "spacing_mm": 1.0,
                  "normalization": {"hu_window": [-1000.0, 600.0], "offset": -300.0, "scale": 700.0}},
        "outputs": outputs, "nodule_threshold": 0.5
    });
    Model::load(&manifest.to_string(), &bytes).expect("tiny model loads")
}

#[test]
fn file_set_counts_files_and_bytes() {
    let set = files(&[("a.dcm", CT_SMALL), ("b.dcm", SR)]);
    assert_eq!(set.length(), 2);
    assert_eq!(set.total_bytes() as usize, CT_SMALL.len() + SR.len());
    let mut set = set;
    set.clear();
    assert_eq!(set.length(), 0);
}

#[test]
fn scan_lists_series_and_skips_non_images() {
    let set = files(&[
        ("ct.dcm", CT_SMALL),
        ("sr.dcm", SR),
        ("junk.bin", b"not dicom at all"),
    ]);
    let inv: serde_json::Value =
        serde_json::from_str(&scan(&set, None, None, None).unwrap()).unwrap();
    let series = inv["studies"][0]["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{inv}");
    assert_eq!(series[0]["modality"], "CT");
    let skipped = inv["skipped"].as_array().unwrap();
    let code = |p: &str| {
        skipped
            .iter()
            .find(|s| s["path"] == p)
            .map(|s| s["code"].clone())
    };
    assert_eq!(code("sr.dcm"), Some("not_an_image".into()), "{inv}");
    assert!(code("junk.bin").is_some(), "{inv}");
}

#[test]
fn inspect_reports_why_no_volume_loads() {
    let set = files(&[("ct.dcm", CT_SMALL)]);
    let report: serde_json::Value =
        serde_json::from_str(&inspect(&set, None, None, None).unwrap()).unwrap();
    assert!(report["volume"].is_null());
    assert_eq!(report["error"]["code"], "no_series", "{report}");
}

#[test]
fn bad_options_fail_with_invalid_argument() {
    let set = files(&[("ct.dcm", CT_SMALL)]);
    let e = inspect(&set, Some("{\"nope\": 1}".into()), None, None).unwrap_err();
    assert_eq!(e.code, "invalid_argument");
    let e = analyze(&set, &tiny_model(), Some("not json".into()), None, None).unwrap_err();
    assert_eq!(e.code, "invalid_argument");
}

#[test]
fn bad_models_fail_with_code_model() {
    let e = Model::load("{}", &[]).unwrap_err();
    assert_eq!(e.code, "model");
    let e = Model::load(r#"{"format": 1}"#, b"garbage").unwrap_err();
    assert_eq!(e.code, "model");
}

#[test]
fn analyze_without_a_volume_is_a_typed_error() {
    let model = tiny_model();
    let id: serde_json::Value = serde_json::from_str(&model.id_json().unwrap()).unwrap();
    assert_eq!(id["runtime"], "burn-flex");
    let e = analyze(&files(&[("ct.dcm", CT_SMALL)]), &model, None, None, None).unwrap_err();
    assert_eq!(e.code, "no_series", "{e}");
    let e = analyze(&FileSet::new(), &model, None, None, None).unwrap_err();
    assert_eq!(e.code, "no_series", "{e}");
}

#[test]
fn jpeg2000_decodes_like_the_uncompressed_twin() {
    // openjp2 allocates through malloc/calloc/realloc/free: under wasm32 this
    // goes through ct-triage-wasm-libc.
    use ct_triage_core::ingest::{InputFile, Limits, decode_stored};
    let j2k = decode_stored(InputFile::new("j2k.dcm", J2K), &Limits::default()).unwrap();
    let raw = decode_stored(InputFile::new("raw.dcm", J2K_REF), &Limits::default()).unwrap();
    assert_eq!(j2k.values, raw.values);
}

#[test]
fn rayon_runs_on_the_calling_thread_in_wasm() {
    let n = ct_triage_wasm::rayon_threads();
    if cfg!(target_arch = "wasm32") {
        assert_eq!(n, 1);
    } else {
        assert!(n >= 1);
    }
}

#[cfg(target_arch = "wasm32")]
mod js {
    use super::*;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn errors_reach_javascript_with_code_and_message() {
        let e = Model::load("{}", &[]).unwrap_err();
        let v = JsValue::from(e.clone());
        let err: &js_sys::Error = v.dyn_ref().expect("an Error");
        assert_eq!(String::from(err.name()), "CtTriageError");
        assert_eq!(String::from(err.message()), e.message);
        let code = js_sys::Reflect::get(&v, &"code".into()).unwrap();
        assert_eq!(code.as_string().as_deref(), Some("model"));
    }

    #[test]
    fn progress_callbacks_and_cancellation() {
        use std::cell::RefCell;
        use std::rc::Rc;
        use wasm_bindgen::closure::Closure;
        let set = files(&[("ct.dcm", CT_SMALL), ("j2k.dcm", J2K)]);
        let seen = Rc::new(RefCell::new(Vec::<String>::new()));
        let s2 = seen.clone();
        let on = Closure::<dyn FnMut(String, f64)>::new(move |stage: String, f: f64| {
            s2.borrow_mut().push(format!("{stage}:{f}"));
        });
        let on_fn: js_sys::Function = on.as_ref().unchecked_ref::<js_sys::Function>().clone();
        scan(&set, None, Some(on_fn), None).unwrap();
        assert!(
            seen.borrow().iter().any(|s| s.starts_with("ingest:")),
            "{:?}",
            seen.borrow()
        );
        // A callback that says "cancelled" stops the run with code `cancelled`.
        let yes = js_sys::Function::new_no_args("return true");
        let e = scan(&set, None, None, Some(yes)).unwrap_err();
        assert_eq!(e.code, "cancelled");
        // A throwing progress callback does not break the run.
        let throws = js_sys::Function::new_with_args("s, f", "throw new Error('boom')");
        scan(&set, None, Some(throws), None).unwrap();
    }
}
