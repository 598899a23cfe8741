//! The input: named byte buffers copied from JavaScript.

use ct_triage_core::ingest::InputFile;
use wasm_bindgen::prelude::*;

/// A set of named files (DICOM instances) to inspect or analyse.
///
/// ```js
/// const files = new FileSet();
/// for (const f of fileList) files.add(f.webkitRelativePath || f.name, new Uint8Array(await f.arrayBuffer()));
/// ```
#[wasm_bindgen]
#[derive(Debug, Default, Clone)]
pub struct FileSet {
    files: Vec<(String, Vec<u8>)>,
}

#[wasm_bindgen]
impl FileSet {
    /// An empty set.
    #[wasm_bindgen(constructor)]
    pub fn new() -> FileSet {
        FileSet::default()
    }

    /// Add one file: its name (path, used in messages) and its bytes (copied).
    pub fn add(&mut self, name: String, bytes: Vec<u8>) {
        self.files.push((name, bytes));
    }

    /// Number of files.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.files.len()
    }

    /// Total size in bytes.
    #[wasm_bindgen(getter, js_name = totalBytes)]
    pub fn total_bytes(&self) -> f64 {
        self.files.iter().map(|(_, b)| b.len() as f64).sum()
    }

    /// Remove every file (frees their memory).
    pub fn clear(&mut self) {
        self.files = Vec::new();
    }
}

impl FileSet {
    /// Borrow the files as core inputs.
    pub fn inputs(&self) -> Vec<InputFile<'_>> {
        self.files
            .iter()
            .map(|(n, b)| InputFile::new(n, b))
            .collect()
    }
}
