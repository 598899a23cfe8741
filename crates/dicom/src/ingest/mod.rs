//! Stage 1 of 11 — ingest: named byte buffers → inventory of studies/series → HU volume.
//!
//! The core never touches the filesystem: adapters hand it [`InputFile`]s
//! (a name, usually the path, and the bytes). Ingest
//!
//! 1. parses every buffer (Part 10, or a bare data set when unambiguous) and
//!    skips what is not an image, with a reason per file;
//! 2. groups frames by study, series and geometry (splitting series that mix
//!    orientations, matrix sizes or pixel spacings) and selects the series to
//!    analyse: CT, not a localizer, most slices, thinnest reconstruction;
//! 3. orders the selected slices by the projection of ImagePositionPatient on
//!    the slice normal, checks for duplicates, gaps, uneven spacing and gantry
//!    tilt, and decodes them into HU through per-slice modality LUTs.
//!
//! ```no_run
//! use ct_triage_dicom::ingest::{self, InputFile, IngestOptions};
//! use ct_triage_analysis::progress::NoProgress;
//!
//! let bytes: Vec<(String, Vec<u8>)> = vec![/* (path, file bytes) … */];
//! let files: Vec<InputFile> = bytes.iter().map(|(n, b)| InputFile::new(n, b)).collect();
//! let scan = ingest::scan(&files, &IngestOptions::default(), &NoProgress)?;
//! for study in &scan.inventory().studies {
//!     for s in &study.series {
//!         println!("{} {} slices selected={} ({})", s.key, s.frames, s.selected, s.reason);
//!     }
//! }
//! let series = scan.load(&IngestOptions::default(), &NoProgress)?;
//! println!("{:?} voxels, spacing {:?} mm", series.volume.geometry.size, series.volume.geometry.spacing);
//! # Ok::<(), ct_triage_dicom::Error>(())
//! ```

pub mod archive;
mod assemble;
mod guard;
mod instance;
mod parse;
mod pixels;
mod series;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use archive::{ArchiveLimits, hidden_member};
pub use ct_triage_analysis::series::{LoadedSeries, Severity, SliceRef, StudyMeta, Warning};
pub use instance::{FrameInfo, PixelLayout, age_from_dates, parse_age};
pub use pixels::{PADDING_HU, StoredPixels, stored_value};
pub use series::{SeriesEntry, StudyEntry};

use crate::error::{Error, ErrorInfo, Result};
use ct_triage_analysis::progress::{Progress, Stage};
use ct_triage_analysis::volume::HuStats;
use instance::{Instance, Parsed};
use series::Group;

/// One input buffer: a name for messages (usually the path) and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct InputFile<'a> {
    /// Name used in messages and in the `skipped` list.
    pub name: &'a str,
    /// The file's bytes.
    pub bytes: &'a [u8],
}

impl<'a> InputFile<'a> {
    /// Wrap a name and bytes.
    pub fn new(name: &'a str, bytes: &'a [u8]) -> Self {
        InputFile { name, bytes }
    }
}

/// Safety limits checked before anything is allocated for an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest accepted file, in bytes. Default 2 GiB.
    pub max_file_bytes: u64,
    /// Most files in one input. Default 100 000.
    pub max_files: u64,
    /// Largest rows × columns of a frame. Default 4096 × 4096.
    pub max_frame_pixels: u64,
    /// Most frames in one instance. Default 10 000.
    pub max_frames: u64,
    /// Largest assembled volume in voxels. Default 1024 × 1024 × 1000.
    pub max_volume_voxels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 2 << 30,
            max_files: 100_000,
            max_frame_pixels: 4096 * 4096,
            max_frames: 10_000,
            max_volume_voxels: 1024 * 1024 * 1000,
        }
    }
}

impl Limits {
    /// Set [`Limits::max_file_bytes`].
    pub fn max_file_bytes(mut self, v: u64) -> Self {
        self.max_file_bytes = v;
        self
    }
    /// Set [`Limits::max_files`].
    pub fn max_files(mut self, v: u64) -> Self {
        self.max_files = v;
        self
    }
    /// Set [`Limits::max_frame_pixels`].
    pub fn max_frame_pixels(mut self, v: u64) -> Self {
        self.max_frame_pixels = v;
        self
    }
    /// Set [`Limits::max_frames`].
    pub fn max_frames(mut self, v: u64) -> Self {
        self.max_frames = v;
        self
    }
    /// Set [`Limits::max_volume_voxels`].
    pub fn max_volume_voxels(mut self, v: u64) -> Self {
        self.max_volume_voxels = v;
        self
    }
}

/// Options of the ingest stage. Build with [`IngestOptions::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestOptions {
    /// Safety limits. Default: [`Limits::default`].
    pub limits: Limits,
    /// Analyse this series (a [`SeriesEntry::key`] or Series Instance UID)
    /// instead of the automatic choice. Default: automatic.
    pub series: Option<String>,
    /// Fewest slices a series needs to be analysable. Default 16.
    pub min_slices: usize,
    /// Refuse a stack with a gap larger than this many median spacings. Default 3.
    pub max_gap_slices: f64,
    /// …unless the gap is still below this many mm. Default 10 mm.
    pub max_gap_mm: f64,
    /// Refuse a stack tilted more than this from the slice normal. Default 30°.
    pub max_tilt_deg: f64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            limits: Limits::default(),
            series: None,
            min_slices: 16,
            max_gap_slices: 3.0,
            max_gap_mm: 10.0,
            max_tilt_deg: 30.0,
        }
    }
}

impl IngestOptions {
    /// Defaults (see each field).
    pub fn new() -> Self {
        Self::default()
    }
    /// Set [`IngestOptions::limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Set [`IngestOptions::series`].
    pub fn series(mut self, key: impl Into<String>) -> Self {
        self.series = Some(key.into());
        self
    }
    /// Set [`IngestOptions::min_slices`].
    pub fn min_slices(mut self, n: usize) -> Self {
        self.min_slices = n;
        self
    }
    /// Set [`IngestOptions::max_gap_slices`].
    pub fn max_gap_slices(mut self, n: f64) -> Self {
        self.max_gap_slices = n;
        self
    }
    /// Set [`IngestOptions::max_tilt_deg`].
    pub fn max_tilt_deg(mut self, deg: f64) -> Self {
        self.max_tilt_deg = deg;
        self
    }
}

/// A file that was not used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Name of the input buffer.
    pub path: String,
    /// Machine-readable code: `not_an_image`, `not_dicom`, `pixel_data`, …
    pub code: String,
    /// Human-readable reason.
    pub reason: String,
}

/// Why a file is skipped (crate-internal form of [`Skipped`]).
#[derive(Debug, Clone)]
pub(crate) struct SkipReason {
    pub code: String,
    pub message: String,
}

/// What the input holds: studies with their candidate series, skipped files, warnings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Studies, each with its candidate series.
    pub studies: Vec<StudyEntry>,
    /// Files that were not used, with the reason.
    pub skipped: Vec<Skipped>,
    /// Input-level warnings.
    pub warnings: Vec<Warning>,
    /// Key of the selected series, if any.
    pub selected: Option<String>,
}

/// A scanned input: parsed instances, grouped and with a series selected.
pub struct Scan {
    instances: Vec<Instance>,
    groups: Vec<Group>,
    inventory: Inventory,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("inventory", &self.inventory)
            .finish()
    }
}

/// Parse all inputs, group them and select a series. Fails only on whole-input
/// limits or cancellation; a bad file is listed in [`Inventory::skipped`].
pub fn scan(files: &[InputFile], opts: &IngestOptions, progress: &dyn Progress) -> Result<Scan> {
    if files.len() as u64 > opts.limits.max_files {
        return Err(Error::LimitExceeded {
            file: "<input>".into(),
            what: "number of files".into(),
            value: files.len() as u64,
            limit: opts.limits.max_files,
        });
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = files.len().max(1) as f64;
    let parsed: Vec<std::result::Result<Parsed, Error>> = files
        .par_iter()
        .map(|f| {
            if progress.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let r = parse::open(f.name, f.bytes, &opts.limits)
                .and_then(|obj| instance::read_instance(f.name, obj, &opts.limits));
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress.progress(Stage::Ingest, 0.3 * d as f64 / total);
            r
        })
        .collect();
    let mut instances = Vec::new();
    let mut skipped = Vec::new();
    for (f, p) in files.iter().zip(parsed) {
        match p {
            Ok(Parsed::Image(inst)) => instances.push(*inst),
            Ok(Parsed::Skip(r)) => skipped.push(Skipped {
                path: f.name.to_string(),
                code: r.code,
                reason: r.message,
            }),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => skipped.push(Skipped {
                path: f.name.to_string(),
                code: e.code().to_string(),
                reason: e.to_string(),
            }),
        }
    }
    let mut groups = series::group(&instances);
    let selected = series::select(&mut groups, opts);
    let mut warnings = Vec::new();
    if let (Some(want), None) = (&opts.series, selected) {
        warnings.push(Warning::new(
            "series_not_found",
            Severity::Warning,
            format!("requested series {want} is not in the input"),
        ));
    }
    let inventory = Inventory {
        studies: studies_of(&instances, &groups),
        skipped,
        warnings,
        selected: selected.map(|i| groups[i].entry.key.clone()),
    };
    Ok(Scan {
        instances,
        groups,
        inventory,
    })
}

fn studies_of(instances: &[Instance], groups: &[Group]) -> Vec<StudyEntry> {
    let mut studies: Vec<StudyEntry> = Vec::new();
    for g in groups {
        let inst = &instances[g.frames[0].0];
        let uid = &inst.meta.study_instance_uid;
        match studies.iter_mut().find(|s| &s.study_instance_uid == uid) {
            Some(s) => s.series.push(g.entry.clone()),
            None => studies.push(StudyEntry {
                study_instance_uid: uid.clone(),
                study_date: inst.meta.study_date.clone(),
                description: inst.meta.study_description.clone(),
                patient_id: inst.meta.patient_id.clone(),
                series: vec![g.entry.clone()],
            }),
        }
    }
    studies
}

impl Scan {
    /// The inventory: studies, series (with selection and reasons), skipped files.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Decode the selected series (or [`IngestOptions::series`] if set) into a volume.
    pub fn load(&self, opts: &IngestOptions, progress: &dyn Progress) -> Result<LoadedSeries> {
        let idx = match &opts.series {
            Some(want) => self
                .groups
                .iter()
                .position(|g| &g.entry.key == want || &g.entry.series_instance_uid == want)
                .ok_or_else(|| Error::SeriesNotFound { uid: want.clone() })?,
            None => self
                .inventory
                .selected
                .as_ref()
                .and_then(|k| self.groups.iter().position(|g| &g.entry.key == k))
                .ok_or_else(|| Error::NoSeries {
                    reason: self.no_series_reason(),
                })?,
        };
        let g = &self.groups[idx];
        let first = &self.instances[g.frames[0].0];
        let assembled =
            assemble::assemble(&self.instances, &g.frames, &g.entry.key, opts, progress)?;
        let mut warnings = assembled.warnings;
        let lossy: Vec<&str> = g
            .entry
            .transfer_syntaxes
            .iter()
            .filter(|t| LOSSY.contains(&t.as_str()))
            .map(|t| t.as_str())
            .collect();
        if !lossy.is_empty() {
            warnings.push(Warning::new(
                "lossy_compression",
                Severity::Warning,
                format!(
                    "lossy compressed pixel data ({}): faint ground-glass and small nodules may be degraded",
                    lossy.join(", ")
                ),
            ));
        }
        if let Some(t) = g.entry.slice_thickness_mm
            && t > 2.5
        {
            warnings.push(Warning::new(
                "thick_slices",
                Severity::Warning,
                format!(
                    "slice thickness {t} mm > 2.5 mm: Lung-RADS assumes screening CT reconstructed at \
                     ≤ 2.5 mm; sizes and categories are less reliable and nodules below ~{:.0} mm \
                     may be missed or mis-measured",
                    t.max(3.0)
                ),
            ));
        }
        if let Some(agent) = &first.meta.contrast_agent {
            warnings.push(Warning::new(
                "contrast",
                Severity::Warning,
                format!(
                    "contrast-enhanced CT (ContrastBolusAgent \"{agent}\"): Lung-RADS is defined for \
                     non-contrast low-dose screening CT; enhancing nodules and vessels can shift the \
                     attenuation type and the calcification assessment"
                ),
            ));
        }
        Ok(LoadedSeries {
            volume: assembled.volume,
            meta: first.meta.clone(),
            slices: assembled.slices,
            series_key: g.entry.key.clone(),
            slice_thickness_mm: g.entry.slice_thickness_mm,
            transfer_syntaxes: g.entry.transfer_syntaxes.clone(),
            warnings,
        })
    }

    fn no_series_reason(&self) -> String {
        if self.groups.is_empty() {
            let n = self.inventory.skipped.len();
            return format!("no image found ({n} file(s) skipped)");
        }
        self.groups
            .iter()
            .map(|g| format!("{}: {}", g.entry.key, g.entry.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Lossy transfer syntaxes (JPEG baseline/extended, JPEG-LS near-lossless, JPEG 2000).
const LOSSY: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
];

/// Scan and load the selected series in one call.
pub fn load(
    files: &[InputFile],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<(Inventory, LoadedSeries)> {
    let scan = scan(files, opts, progress)?;
    let series = scan.load(opts, progress)?;
    Ok((scan.inventory, series))
}

/// Check a DICOM Part 10 buffer before any DICOM parser sees it: it must
/// carry the `DICM` marker (with or without the 128-byte preamble), be no
/// larger than [`Limits::max_file_bytes`], and every length field of its meta
/// group and data set must fit in the bytes that are there (a deflated data
/// set is inflated up to `max_file_bytes` and checked too).
///
/// This is the guard ingest runs itself before parsing. Adapters call it for
/// bytes they parse with dicom-object on their own (the server reads the
/// header of every received instance): dicom-object reserves and zero-fills
/// each declared length before reading it, so an unchecked 120-byte data set
/// declaring a 3.75 GiB element costs 3.75 GiB of memory. Walking the
/// headers allocates nothing but the inflated copy of a deflated data set.
///
/// Errors: [`Error::LimitExceeded`] for an oversized buffer,
/// [`Error::NotDicom`] (or [`Error::PixelData`] for cut-short pixel data)
/// naming the element whose length does not fit.
///
/// ```
/// use ct_triage_dicom::ingest::{Limits, check_part10};
/// let err = check_part10("junk.dcm", b"not dicom", &Limits::default()).unwrap_err();
/// assert_eq!(err.code(), "not_dicom");
/// ```
pub fn check_part10(name: &str, bytes: &[u8], limits: &Limits) -> Result<()> {
    parse::check_part10(name, bytes, limits)
}

/// Like [`check_part10`] for a bare data set (no preamble, no file meta
/// group) encoded in `transfer_syntax` — what a DICOM peer sends in a
/// C-STORE. An unknown transfer syntax is refused.
pub fn check_dataset(
    name: &str,
    bytes: &[u8],
    transfer_syntax: &str,
    limits: &Limits,
) -> Result<()> {
    parse::check_dataset(name, bytes, transfer_syntax, limits)
}

/// Decode the stored pixel values of one file (every frame), without HU rescale.
///
/// This is the conformance entry point: its output equals what DICOM toolkits
/// such as pydicom return for the same file.
pub fn decode_stored(file: InputFile, limits: &Limits) -> Result<StoredPixels> {
    let obj = parse::open(file.name, file.bytes, limits)?;
    match instance::read_instance_layout_only(file.name, obj, limits)? {
        Some(inst) => pixels::stored_pixels(&inst),
        None => Err(Error::Unsupported {
            file: file.name.to_string(),
            what: "no pixel data in this object".into(),
        }),
    }
}

/// What `inspect` shows about the selected series' volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSummary {
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// Series key ([`SeriesEntry::key`]).
    pub series_key: String,
    /// Size in voxels `[x, y, z]`.
    pub size_xyz: [usize; 3],
    /// Spacing in mm `[x, y, z]`.
    pub spacing_mm: [f64; 3],
    /// LPS position of the first voxel centre (mm).
    pub origin_lps_mm: [f64; 3],
    /// Direction cosines: row, column, slice axis (9 numbers).
    pub direction: [f64; 9],
    /// Transfer syntaxes of the source instances.
    pub transfer_syntaxes: Vec<String>,
    /// HU statistics.
    pub hu: HuStats,
}

impl VolumeSummary {
    /// The summary `inspect` prints of a loaded series.
    pub fn of(series: &LoadedSeries) -> VolumeSummary {
        let s = series;
        let g = &s.volume.geometry;
        VolumeSummary {
            series_instance_uid: s.meta.series_instance_uid.clone(),
            series_key: s.series_key.clone(),
            size_xyz: g.size,
            spacing_mm: g.spacing,
            origin_lps_mm: g.origin,
            direction: g.direction_flat(),
            transfer_syntaxes: s.transfer_syntaxes.clone(),
            hu: s.volume.hu_stats(),
        }
    }
}

/// The output of `inspect`: inventory plus the selected volume (or why it failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    /// Studies and their series.
    pub studies: Vec<StudyEntry>,
    /// Files not used, with reasons.
    pub skipped: Vec<Skipped>,
    /// Input and volume warnings.
    pub warnings: Vec<Warning>,
    /// The selected volume, if one could be loaded.
    pub volume: Option<VolumeSummary>,
    /// Why no volume could be loaded.
    pub error: Option<ErrorInfo>,
}

/// Scan the input and load the selected series, reporting everything.
pub fn inspect(
    files: &[InputFile],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<InspectReport> {
    let scan = scan(files, opts, progress)?;
    let inv = scan.inventory().clone();
    let mut warnings = inv.warnings;
    let (volume, error) = match scan.load(opts, progress) {
        Ok(s) => {
            warnings.extend(s.warnings.iter().cloned());
            (Some(VolumeSummary::of(&s)), None)
        }
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        Err(e) => (None, Some(ErrorInfo::from(&e))),
    };
    Ok(InspectReport {
        studies: inv.studies,
        skipped: inv.skipped,
        warnings,
        volume,
        error,
    })
}
