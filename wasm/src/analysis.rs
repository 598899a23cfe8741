//! The result of one analysis, kept in wasm memory for the page: the report,
//! key images, the loaded volume (slices for a viewer) and finding masks.

use ct_triage_core::opacities::{CONSOLIDATION, GROUND_GLASS, OpacityMap};
use ct_triage_core::pipeline::Analysis;
use ct_triage_core::report::dicom::{BundleOptions, DeidOptions, ExportOptions, bundle, export};
use ct_triage_core::report::key_images::render_slice;
use ndarray::Axis;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::WasmError;

/// What a viewer needs to know about the loaded volume.
#[derive(Debug, Serialize)]
struct VolumeInfo<'a> {
    /// Size in voxels `[x, y, z]`.
    size_xyz: [usize; 3],
    /// Spacing in mm `[x, y, z]`.
    spacing_mm: [f64; 3],
    /// LPS position of voxel (0, 0, 0), mm.
    origin_lps_mm: [f64; 3],
    /// Direction cosines (row, column, slice).
    direction: [f64; 9],
    /// Series key.
    series_key: &'a str,
    /// Series Instance UID.
    series_instance_uid: &'a str,
    /// SOP Instance UID of each slice.
    sop_instance_uids: Vec<&'a str>,
    /// Image number (InstanceNumber) of each slice, as PACS shows it.
    image_numbers: Vec<Option<i64>>,
    /// Series number of the source series.
    series_number: Option<i64>,
}

/// A plain JavaScript object with these properties.
fn js_object<const N: usize>(props: [(&str, JsValue); N]) -> js_sys::Object {
    let item = js_sys::Object::new();
    for (k, v) in props {
        // Setting a property on a fresh plain object cannot fail.
        let _ = js_sys::Reflect::set(&item, &JsValue::from_str(k), &v);
    }
    item
}

/// One finished analysis. Free it (`result.free()`) when the page no longer
/// shows it; the volume it holds is the largest allocation of the module.
#[wasm_bindgen]
#[derive(Debug)]
pub struct AnalysisResult {
    analysis: Analysis,
}

impl AnalysisResult {
    /// Wrap a core analysis.
    pub fn new(analysis: Analysis) -> Self {
        AnalysisResult { analysis }
    }

    /// The core analysis.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// The opacity map, when the opacity stage ran.
    fn opacity_map(&self) -> Option<&OpacityMap> {
        self.analysis.opacity_map.as_ref()
    }

    fn check_slice(&self, z: usize) -> Result<(), WasmError> {
        let nz = self.analysis.series.volume.hu.dim().0;
        if z >= nz {
            return Err(WasmError::invalid(format!(
                "slice {z} is outside the volume (0..{nz})"
            )));
        }
        Ok(())
    }
}

#[wasm_bindgen]
impl AnalysisResult {
    /// The report as pretty JSON: the same document as `ct-triage analyze --json`.
    #[wasm_bindgen(js_name = reportJson)]
    pub fn report_json(&self) -> String {
        self.analysis.report.to_json()
    }

    /// Geometry of the loaded volume as JSON: `size_xyz`, `spacing_mm`,
    /// `origin_lps_mm`, `direction`, `series_key`, `series_instance_uid`,
    /// `sop_instance_uids`, `image_numbers` (InstanceNumber per slice), `series_number`.
    #[wasm_bindgen(js_name = volumeJson)]
    pub fn volume_json(&self) -> Result<String, WasmError> {
        let s = &self.analysis.series;
        let g = &s.volume.geometry;
        let info = VolumeInfo {
            size_xyz: g.size,
            spacing_mm: g.spacing,
            origin_lps_mm: g.origin,
            direction: g.direction_flat(),
            series_key: &s.series_key,
            series_instance_uid: &s.meta.series_instance_uid,
            sop_instance_uids: s
                .slices
                .iter()
                .map(|r| r.sop_instance_uid.as_str())
                .collect(),
            image_numbers: s.slices.iter().map(|r| r.instance_number).collect(),
            series_number: s.meta.series_number,
        };
        serde_json::to_string(&info).map_err(WasmError::output)
    }

    /// Number of slices (`z` size).
    #[wasm_bindgen(getter, js_name = sliceCount)]
    pub fn slice_count(&self) -> usize {
        self.analysis.series.volume.hu.dim().0
    }

    /// The HU values of axial slice `z`, row-major `[y, x]` (a copy).
    #[wasm_bindgen(js_name = sliceHu)]
    pub fn slice_hu(&self, z: usize) -> Result<Vec<i16>, WasmError> {
        self.check_slice(z)?;
        let plane = self.analysis.series.volume.hu.index_axis(Axis(0), z);
        Ok(plane.iter().copied().collect())
    }

    /// Axial slice `z` rendered in the window (`center`, `width` in HU) as
    /// RGBA pixels, row-major, ready for `new ImageData(...)`.
    #[wasm_bindgen(js_name = renderSlice)]
    pub fn render_slice(&self, z: usize, center: f64, width: f64) -> Result<Vec<u8>, WasmError> {
        self.check_slice(z)?;
        if !(width.is_finite() && width > 0.0 && center.is_finite()) {
            return Err(WasmError::invalid(format!(
                "window {center}/{width}: the width must be positive"
            )));
        }
        let rgb = render_slice(&self.analysis.series.volume, z, (center, width));
        let mut rgba = Vec::with_capacity(rgb.as_raw().len() / 3 * 4);
        for px in rgb.as_raw().chunks_exact(3) {
            rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
        }
        Ok(rgba)
    }

    /// Number of key images.
    #[wasm_bindgen(getter, js_name = keyImageCount)]
    pub fn key_image_count(&self) -> usize {
        self.analysis.key_images.len()
    }

    /// File name of key image `i` (`key-images/finding-N.png`).
    #[wasm_bindgen(js_name = keyImageFile)]
    pub fn key_image_file(&self, i: usize) -> Option<String> {
        self.analysis.key_images.get(i).map(|k| k.file.clone())
    }

    /// Finding id of key image `i`.
    #[wasm_bindgen(js_name = keyImageFindingId)]
    pub fn key_image_finding_id(&self, i: usize) -> Option<u32> {
        self.analysis.key_images.get(i).map(|k| k.finding_id)
    }

    /// PNG bytes of key image `i`.
    #[wasm_bindgen(js_name = keyImagePng)]
    pub fn key_image_png(&self, i: usize) -> Option<Vec<u8>> {
        self.analysis.key_images.get(i).map(|k| k.png.clone())
    }

    /// Bounding box of finding `i`'s segmentation (report order, 0-based):
    /// `[x0, y0, z0, nx, ny, nz]` in source voxels.
    #[wasm_bindgen(js_name = maskBox)]
    pub fn mask_box(&self, i: usize) -> Option<Vec<u32>> {
        let m = self.analysis.masks.get(i)?;
        let (nz, ny, nx) = m.mask.dim();
        let [x0, y0, z0] = m.origin_xyz;
        Some(
            [x0, y0, z0, nx, ny, nz]
                .iter()
                .map(|&v| u32::try_from(v).unwrap_or(u32::MAX))
                .collect(),
        )
    }

    /// Finding `i`'s segmentation on source slice `z`, row-major over its box
    /// (`nx * ny` bytes, 1 inside), or `undefined` when the slice misses it.
    #[wasm_bindgen(js_name = maskSlice)]
    pub fn mask_slice(&self, i: usize, z: usize) -> Option<Vec<u8>> {
        let m = self.analysis.masks.get(i)?;
        let z0 = m.origin_xyz[2];
        let k = z.checked_sub(z0)?;
        if k >= m.mask.dim().0 {
            return None;
        }
        Some(
            m.mask
                .index_axis(Axis(0), k)
                .iter()
                .map(|&b| u8::from(b))
                .collect(),
        )
    }

    /// The source slices with a diffuse opacity (ground glass or
    /// consolidation), ascending; empty when the scan has none or the opacity
    /// stage did not run (an inconclusive scan).
    #[wasm_bindgen(js_name = opacitySlices)]
    pub fn opacity_slices(&self) -> Vec<u32> {
        self.opacity_map()
            .map(|m| {
                m.slices
                    .iter()
                    .map(|s| u32::try_from(s.slice).unwrap_or(u32::MAX))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Voxels of source slice `z` labelled `[ground glass, consolidation]`,
    /// counted on the core's runs (`[0, 0]` for a slice without opacity).
    #[wasm_bindgen(js_name = opacityVoxels)]
    pub fn opacity_voxels(&self, z: usize) -> Result<Vec<u32>, WasmError> {
        self.check_slice(z)?;
        let s = self.opacity_map().and_then(|m| m.slice(z));
        Ok([GROUND_GLASS, CONSOLIDATION]
            .iter()
            .map(|&l| s.map_or(0, |s| u32::try_from(s.count(l)).unwrap_or(u32::MAX)))
            .collect())
    }

    /// The diffuse-opacity label image of source slice `z`, row-major
    /// `[y, x]` (`columns * rows` bytes: 0 none, 1 ground glass, 2
    /// consolidation), or `undefined` when the slice has none. Out-of-range
    /// `z` is an `invalid_argument` error.
    #[wasm_bindgen(js_name = opacitySlice)]
    pub fn opacity_slice(&self, z: usize) -> Result<Option<Vec<u8>>, WasmError> {
        self.check_slice(z)?;
        Ok(self
            .opacity_map()
            .filter(|m| m.slice(z).is_some())
            .map(|m| m.label_image(z)))
    }

    /// The analysis as DICOM objects (Part 10 bytes): the TID 1500 measurement
    /// report SR (`report.sr.dcm`), the findings' segmentation (`findings.seg.dcm`),
    /// with `key_images` the key images as Secondary Capture (overview and
    /// zoom per finding), and the Key Object Selection (`key-objects.kos.dcm`).
    /// An array of `{file, kind, sopInstanceUid, bytes}`; the content date/time is now.
    #[wasm_bindgen(js_name = dicomExport)]
    pub fn dicom_export(&self, key_images: bool) -> Result<js_sys::Array, WasmError> {
        let objects = export(&self.analysis, &ExportOptions::new().key_images(key_images))?;
        let out = js_sys::Array::new();
        for o in objects {
            let kind = serde_json::to_value(o.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push(&js_object([
                ("file", JsValue::from_str(&o.file)),
                ("kind", JsValue::from_str(&kind)),
                ("sopInstanceUid", JsValue::from_str(&o.sop_instance_uid)),
                ("bytes", js_sys::Uint8Array::from(o.bytes.as_slice()).into()),
            ]));
        }
        Ok(out)
    }

    /// Every file of the result folder the CLI writes, in memory: the key
    /// images (PNG), the DICOM objects, with `deidentify` the
    /// de-identification log, and `report.json` last. With `deidentify`, the
    /// report and the objects are de-identified by core's one recipe (PS3.15
    /// Basic Profile, default options) with `key` (at least 16 bytes; the
    /// same key gives the same pseudonyms and date shift). An array of
    /// `{name, bytes}`; the content date/time is now.
    #[wasm_bindgen(js_name = resultBundle)]
    pub fn result_bundle(
        &self,
        deidentify: bool,
        key: Option<Vec<u8>>,
    ) -> Result<js_sys::Array, WasmError> {
        let mut o = BundleOptions::new();
        if deidentify {
            let key =
                key.ok_or_else(|| WasmError::invalid("resultBundle: deidentify needs a key"))?;
            o = o.deidentify(DeidOptions::default(), &key);
        }
        let b = bundle(&self.analysis, &o)?;
        let out = js_sys::Array::new();
        for f in b.files() {
            out.push(&js_object([
                ("name", JsValue::from_str(f.name)),
                ("bytes", js_sys::Uint8Array::from(&f.bytes[..]).into()),
            ]));
        }
        Ok(out)
    }

    /// LPS (mm) → continuous voxel index `[x, y, z]` of the source volume,
    /// to draw report coordinates (finding axes) on slices.
    #[wasm_bindgen(js_name = patientToVoxel)]
    pub fn patient_to_voxel(&self, x: f64, y: f64, z: f64) -> Vec<f64> {
        self.analysis
            .series
            .volume
            .geometry
            .patient_to_voxel([x, y, z])
            .to_vec()
    }
}
