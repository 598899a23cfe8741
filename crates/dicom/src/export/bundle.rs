//! The result bundle of one analysis: every file of a result folder, in
//! memory, optionally de-identified — one call for the CLI, the server and
//! the browser, so the de-identification recipe exists once.
//!
//! ```text
//! report.json                      the report (de-identified when asked)
//! key-images/finding-N.png         one key image per finding (burned-in text: the
//!                                  finding's number, image number, size and category
//!                                  — no patient identity)
//! report.sr.dcm, findings.seg.dcm, key-images/*.sc.dcm, key-objects.kos.dcm
//! deidentification.json            with de-identification: what was done to each file
//! ```
//!
//! ```no_run
//! # fn analysis() -> ct_triage_analysis::report::Analysis { unimplemented!() }
//! use ct_triage_dicom::export::{bundle, BundleOptions, DeidOptions};
//! let a = analysis();
//! let b = bundle(&a, &BundleOptions::new().deidentify(DeidOptions::default(), b"a secret key 0123"))?;
//! for f in b.files() {
//!     println!("{} {} bytes", f.name, f.bytes.len()); // report.json, report.sr.dcm, …
//! }
//! # Ok::<(), ct_triage_dicom::Error>(())
//! ```

use super::{DeidOptions, DeidentificationLog, ExportOptions, ExportedObject, UidMapper};
use super::{export, export_deidentified};
use crate::deid::deidentify_report;
use crate::error::{Error, Result};
use ct_triage_analysis::report::{Analysis, Report};

/// File name of the report in a result bundle.
pub const REPORT_FILE: &str = "report.json";

/// File name of the de-identification log in a de-identified result bundle.
pub const DEID_FILE: &str = "deidentification.json";

/// Options of [`bundle`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BundleOptions {
    /// The DICOM objects' options. Default [`ExportOptions::default`].
    pub export: ExportOptions,
    /// De-identify the report and the objects with these options and key
    /// (the salt of the UID mapping, pseudonym and date shift: the same key
    /// gives the same replacements in every run). Default `None`: as analysed.
    pub deidentify: Option<(DeidOptions, Vec<u8>)>,
}

impl BundleOptions {
    /// Defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Use these export options.
    pub fn export(mut self, o: ExportOptions) -> Self {
        self.export = o;
        self
    }
    /// De-identify with these options and key.
    pub fn deidentify(mut self, o: DeidOptions, key: &[u8]) -> Self {
        self.deidentify = Some((o, key.to_vec()));
        self
    }
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFile<'a> {
    /// Relative path inside the result folder (`/`-separated, no `..`).
    pub name: &'a str,
    /// Its bytes.
    pub bytes: std::borrow::Cow<'a, [u8]>,
}

/// Every file of one analysis' result folder ([`bundle`]).
#[derive(Debug)]
pub struct ResultBundle {
    /// The report as written to `report.json` (de-identified when asked).
    pub report: Report,
    /// The DICOM objects (de-identified when asked); empty when they could
    /// not be written (see `dicom_error`).
    pub objects: Vec<ExportedObject>,
    /// Why the DICOM objects were not written (e.g. a series without Frame
    /// of Reference); the report is still complete.
    pub dicom_error: Option<Error>,
    /// With de-identification: what was done to each file (report first).
    pub deidentification: Option<DeidentificationLog>,
    key_images: Vec<(String, Vec<u8>)>,
}

impl ResultBundle {
    /// Whether the bundle was de-identified.
    pub fn is_deidentified(&self) -> bool {
        self.deidentification.is_some()
    }

    /// Every file, in writing order: key images, DICOM objects, the
    /// de-identification log, and the report last (so a folder with a
    /// report is complete).
    pub fn files(&self) -> Vec<BundleFile<'_>> {
        let mut out: Vec<BundleFile<'_>> = self
            .key_images
            .iter()
            .map(|(name, png)| BundleFile {
                name,
                bytes: png.as_slice().into(),
            })
            .collect();
        out.extend(self.objects.iter().map(|o| BundleFile {
            name: &o.file,
            bytes: o.bytes.as_slice().into(),
        }));
        if let Some(log) = &self.deidentification {
            out.push(BundleFile {
                name: DEID_FILE,
                bytes: log.to_json().into_bytes().into(),
            });
        }
        out.push(BundleFile {
            name: REPORT_FILE,
            bytes: self.report.to_json().into_bytes().into(),
        });
        out
    }
}

/// Shortest de-identification key [`bundle`] accepts, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// The result bundle of `a`: report, key images and DICOM objects, all
/// de-identified with one key when `o.deidentify` is set (same UIDs,
/// pseudonym and date shift in the report and the objects). Objects that
/// cannot be written leave the report intact and say why in `dicom_error`.
/// Fails with [`Error::InvalidArgument`] only for a key shorter than
/// [`MIN_KEY_BYTES`].
pub fn bundle(a: &Analysis, o: &BundleOptions) -> Result<ResultBundle> {
    if let Some((_, key)) = &o.deidentify
        && key.len() < MIN_KEY_BYTES
    {
        return Err(Error::InvalidArgument(format!(
            "de-identification key: at least {MIN_KEY_BYTES} bytes required, found {}",
            key.len()
        )));
    }
    let key_images = a
        .key_images
        .iter()
        .map(|k| (k.file.clone(), k.png.clone()))
        .chain(
            a.opacity_key_image
                .iter()
                .map(|k| (k.file.clone(), k.png.clone())),
        )
        .collect();
    match &o.deidentify {
        None => {
            let (objects, dicom_error) = match export(a, &o.export) {
                Ok(objs) => (objs, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            Ok(ResultBundle {
                report: a.report.clone(),
                objects,
                dicom_error,
                deidentification: None,
                key_images,
            })
        }
        Some((d, key)) => {
            let mut mapper = UidMapper::new(key);
            let (objects, mut records, dicom_error) =
                match export_deidentified(a, &o.export, d, &mut mapper) {
                    Ok((objs, recs)) => (objs, recs, None),
                    Err(e) => (Vec::new(), Vec::new(), Some(e)),
                };
            let (report, mut record) = deidentify_report(&a.report, d, &mut mapper);
            record.file = Some(REPORT_FILE.to_string());
            records.insert(0, record);
            Ok(ResultBundle {
                report,
                objects,
                dicom_error,
                deidentification: Some(DeidentificationLog::new(d, records)),
                key_images,
            })
        }
    }
}
