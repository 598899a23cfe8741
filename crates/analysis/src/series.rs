//! The series as the analysis sees it: an HU volume with the study's
//! attributes and each slice's source reference, already out of DICOM.
//!
//! `ct-triage-dicom`'s ingest builds a [`LoadedSeries`] from DICOM files; the
//! analysis stages and the report use it without knowing any DICOM encoding
//! (dicom-rs' pattern: pixel data becomes an array at the edge).

use serde::{Deserialize, Serialize};

use crate::volume::Volume;

/// HU written for pixels marked as padding (outside the reconstruction field).
pub const PADDING_HU: i16 = -1024;

/// How serious a warning is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; the result is not affected.
    Info,
    /// The result may be affected; a reader should check.
    Warning,
}

/// Something a reader of the result should know about the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Warning {
    /// Stable machine-readable code (`gantry_tilt`, `uneven_spacing`, …).
    pub code: String,
    /// How serious it is.
    pub severity: Severity,
    /// Human-readable explanation.
    pub message: String,
}

impl Warning {
    /// A new warning.
    pub fn new(code: &str, severity: Severity, message: impl Into<String>) -> Self {
        Warning {
            code: code.to_string(),
            severity,
            message: message.into(),
        }
    }
}

/// The source of one slice of the volume, for references in DICOM SR and SEG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceRef {
    /// SOP Class UID of the source instance.
    pub sop_class_uid: String,
    /// SOP Instance UID of the source instance.
    pub sop_instance_uid: String,
    /// 1-based frame number inside a multi-frame instance, `None` for single-frame.
    pub frame_number: Option<u32>,
    /// InstanceNumber of the source instance (what PACS viewers show as the
    /// image number), `None` when the file has none.
    #[serde(default)]
    pub instance_number: Option<i64>,
}

/// Patient, study and series attributes a report needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyMeta {
    /// PatientID.
    pub patient_id: Option<String>,
    /// PatientName.
    pub patient_name: Option<String>,
    /// PatientSex (`M`, `F`, `O`).
    pub patient_sex: Option<String>,
    /// Age in years from PatientAge, or from PatientBirthDate and StudyDate.
    pub patient_age_years: Option<f64>,
    /// PatientBirthDate (YYYYMMDD).
    pub patient_birth_date: Option<String>,
    /// StudyInstanceUID.
    pub study_instance_uid: String,
    /// StudyDate (YYYYMMDD).
    pub study_date: Option<String>,
    /// StudyTime.
    pub study_time: Option<String>,
    /// StudyID.
    pub study_id: Option<String>,
    /// StudyDescription.
    pub study_description: Option<String>,
    /// AccessionNumber.
    pub accession_number: Option<String>,
    /// ReferringPhysicianName.
    pub referring_physician_name: Option<String>,
    /// SeriesInstanceUID.
    pub series_instance_uid: String,
    /// SeriesNumber.
    pub series_number: Option<i64>,
    /// SeriesDescription.
    pub series_description: Option<String>,
    /// Modality.
    pub modality: String,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// ManufacturerModelName.
    pub manufacturer_model: Option<String>,
    /// KVP.
    pub kvp: Option<f64>,
    /// ConvolutionKernel.
    pub convolution_kernel: Option<String>,
    /// BodyPartExamined.
    pub body_part: Option<String>,
    /// ContrastBolusAgent (present when contrast was given).
    pub contrast_agent: Option<String>,
}

/// A loaded series: the HU volume and everything a report needs about it.
#[derive(Debug, Clone)]
pub struct LoadedSeries {
    /// The HU volume.
    pub volume: Volume,
    /// Patient/study/series attributes (from the first instance).
    pub meta: StudyMeta,
    /// Source instance of each volume slice (nearest one for interpolated slices).
    pub slices: Vec<SliceRef>,
    /// Key of the series (`SeriesEntry::key` of the ingest).
    pub series_key: String,
    /// Nominal slice thickness in mm, when recorded.
    pub slice_thickness_mm: Option<f64>,
    /// Transfer syntaxes of the source instances.
    pub transfer_syntaxes: Vec<String>,
    /// Warnings about this series (geometry, compression, …).
    pub warnings: Vec<Warning>,
}
