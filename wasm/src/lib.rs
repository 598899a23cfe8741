//! # ct-triage-wasm
//!
//! ct-triage in the browser: a thin [`wasm_bindgen`] adapter over
//! [`ct_triage_core`]. It holds no analysis logic of its own: it turns
//! JavaScript inputs into [`InputFile`](ct_triage_core::ingest::InputFile)s,
//! calls the core and turns the results back into JavaScript values.
//!
//! | JavaScript | Rust |
//! |---|---|
//! | `new FileSet()`, `files.add(name, bytes)` | [`FileSet`] |
//! | `Model.load(manifestJson, weights)` | [`Model`] (the built-in burn classifier) |
//! | `scan(files, optionsJson, onProgress, isCancelled)` | [`scan`] → the inventory (studies, series) as JSON |
//! | `inspect(files, optionsJson, onProgress, isCancelled)` | [`inspect`] → the `ct-triage inspect --json` document |
//! | `analyze(files, model, optionsJson, onProgress, isCancelled)` | [`analyze`] → [`AnalysisResult`] |
//! | `result.reportJson()`, `result.keyImagePng(i)`, `result.renderSlice(z, c, w)`, `result.opacitySlice(z)` … | [`AnalysisResult`] |
//!
//! Every failure is a JavaScript `Error` whose `code` is the core
//! [`Error::code`](ct_triage_core::Error::code) and whose `message` is its text
//! ([`WasmError`]). Nothing here panics on input; should the instance trap
//! anyway, the worker in `pkg/worker.js` reports it and a fresh instance
//! is started.
//!
//! The package in `wasm/pkg/` wraps this module in a Web Worker with a
//! promise-based API (`index.js`, typed by `index.d.ts`).

#![warn(missing_docs)]

mod analysis;
mod error;
mod files;
mod model;
mod options;
mod progress;

// Link the C allocation symbols openjp2 needs (wasm32 only).
#[cfg(target_arch = "wasm32")]
use ct_triage_wasm_libc as _;

use wasm_bindgen::prelude::*;

pub use analysis::AnalysisResult;
pub use error::WasmError;
pub use files::FileSet;
pub use model::Model;
pub use options::AnalyzeOptions;

use ct_triage_core::ingest;
use ct_triage_core::pipeline;

/// The crate version (same as the core and the native CLI).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Install the panic hook. Called once when the module is instantiated: a panic
/// (a bug, never expected) is logged with its message and kept for
/// [`last_panic`] before the instance traps.
#[wasm_bindgen(start)]
pub fn start() {
    error::install_panic_hook();
}

/// The archive rules every reader applies (the core's
/// [`ArchiveLimits`](ct_triage_core::ingest::ArchiveLimits) defaults, as JSON:
/// `max_member_bytes`, `max_total_bytes`, `max_ratio`, `ratio_floor_bytes`,
/// `max_members`): the worker unpacks zips within them, as the native reader does.
#[wasm_bindgen(js_name = archiveLimits)]
pub fn archive_limits() -> Result<String, WasmError> {
    serde_json::to_string(&ingest::ArchiveLimits::default()).map_err(WasmError::output)
}

/// Whether an archive member is skipped as hidden (`.DS_Store`, `__MACOSX/…`),
/// by the core's rule ([`ct_triage_core::ingest::hidden_member`]).
#[wasm_bindgen(js_name = isHiddenMember)]
pub fn is_hidden_member(path: &str) -> bool {
    ingest::hidden_member(path)
}

/// The message of the last panic, if the instance trapped on one.
#[wasm_bindgen(js_name = lastPanic)]
pub fn last_panic() -> Option<String> {
    error::last_panic()
}

/// Inventory the input and load the selected series, without analysing it.
///
/// Returns the same JSON document as the native `ct-triage inspect --json`.
/// `options_json` is an [`AnalyzeOptions`] object (only `series` is used);
/// `on_progress(stage, fraction)` is called as decoding advances and
/// `is_cancelled()` is polled; when it returns `true` the call fails with code
/// `cancelled`.
#[wasm_bindgen]
pub fn inspect(
    files: &FileSet,
    options_json: Option<String>,
    on_progress: Option<js_sys::Function>,
    is_cancelled: Option<js_sys::Function>,
) -> Result<String, WasmError> {
    let opts = AnalyzeOptions::parse(options_json.as_deref())?;
    let inputs = files.inputs();
    let _guard = progress::install(on_progress, is_cancelled);
    let report = ingest::inspect(&inputs, &opts.ingest_options(), &progress::JsProgress)?;
    serde_json::to_string_pretty(&report).map_err(WasmError::output)
}

/// Parse the input and list its studies and series, without decoding pixels:
/// the core's [`Inventory`](ct_triage_core::ingest::Inventory) as JSON
/// (`studies[].series[]` with `key`, `eligible`, `selected`, `reason`, …;
/// `skipped`; `warnings`; `selected`). Cheap: use it for a series picker.
#[wasm_bindgen]
pub fn scan(
    files: &FileSet,
    options_json: Option<String>,
    on_progress: Option<js_sys::Function>,
    is_cancelled: Option<js_sys::Function>,
) -> Result<String, WasmError> {
    let opts = AnalyzeOptions::parse(options_json.as_deref())?;
    let inputs = files.inputs();
    let _guard = progress::install(on_progress, is_cancelled);
    let scan = ingest::scan(
        &inputs,
        &opts.analysis_options().ingest,
        &progress::JsProgress,
    )?;
    serde_json::to_string(scan.inventory()).map_err(WasmError::output)
}

/// Analyse the input with `model`: ingest, lungs, candidates, classification,
/// measurement, Lung-RADS, risk and triage.
///
/// `options_json` is an [`AnalyzeOptions`] object (or `null` for the defaults
/// of the native CLI); progress and cancellation as in [`inspect`].
#[wasm_bindgen]
pub fn analyze(
    files: &FileSet,
    model: &Model,
    options_json: Option<String>,
    on_progress: Option<js_sys::Function>,
    is_cancelled: Option<js_sys::Function>,
) -> Result<AnalysisResult, WasmError> {
    let opts = AnalyzeOptions::parse(options_json.as_deref())?;
    let inputs = files.inputs();
    let _guard = progress::install(on_progress, is_cancelled);
    let analysis = pipeline::analyze(
        &inputs,
        &opts.analysis_options(),
        model.classifier(),
        &progress::JsProgress,
    )?;
    Ok(AnalysisResult::new(analysis))
}

/// The number of threads rayon's global pool runs on: 1 on wasm32 without
/// threads, where rayon falls back to running parallel iterators on the
/// calling thread. Exposed for tests.
#[wasm_bindgen(js_name = rayonThreads)]
pub fn rayon_threads() -> usize {
    rayon::current_num_threads()
}
