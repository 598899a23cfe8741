//! The analysis as standard DICOM objects, for PACS, viewers and worklists:
//!
//! | module | object | SOP class |
//! |---|---|---|
//! | [`sr`] | TID 1500 Measurement Report (Comprehensive 3D SR) | 1.2.840.10008.5.1.4.1.1.88.34 |
//! | [`seg`] | the finding masks as a BINARY Segmentation | 1.2.840.10008.5.1.4.1.1.66.4 |
//! | [`sc`] | the key images as Secondary Capture (RGB, overview and zoom per finding) | 1.2.840.10008.5.1.4.1.1.7 |
//! | [`kos`] | Key Object Selection (TID 2010) pointing to the key images and source slices | 1.2.840.10008.5.1.4.1.1.88.59 |
//! | [`deid`] | PS3.15 Annex E Basic Application Level Confidentiality Profile | — |
//!
//! Everything here works on bytes and in-memory objects (no filesystem), so
//! the browser build offers the same objects as the server. The writers are
//! deterministic: the same analysis and the same content date/time give
//! byte-identical objects (UIDs are derived from the report, see [`uid`]);
//! the content date/time is the one time-dependent input and defaults to now.
//!
//! [`export`] writes them all with the SR referencing the SEG's segments and
//! the KOS referencing the key images;
//! [`export_deidentified`] also runs them through [`deid::deidentify`], and
//! [`deid::deidentify_report`] gives the matching de-identified report (same
//! options and salt: same UIDs, pseudonym and date shift as the objects);
//! [`bundle`] gives every file of a result folder (report, key images,
//! objects, de-identification log) in memory, de-identified when asked —
//! what the CLI, the server and the browser write.
//!
//! ```no_run
//! # fn analysis() -> ct_triage_analysis::report::Analysis { unimplemented!() }
//! use ct_triage_dicom::export::{export, ContentDateTime, ExportOptions};
//! let a = analysis();
//! let when = ContentDateTime::new("20240102", "030405")?;
//! for obj in export(&a, &ExportOptions::default().content(when))? {
//!     println!("{} {} bytes", obj.file, obj.bytes.len()); // report.sr.dcm, findings.seg.dcm, …
//! }
//! # Ok::<(), ct_triage_dicom::Error>(())
//! ```

pub(crate) mod build;
pub mod bundle;
pub mod codes;
pub mod header;
/// De-identification (PS3.15 Annex E), at its old path `report::dicom::deid`.
pub use crate::deid;
pub mod kos;
pub mod sc;
pub mod seg;
pub mod sr;
pub mod uid;

use serde::{Deserialize, Serialize};

pub use bundle::{
    BundleFile, BundleOptions, DEID_FILE, MIN_KEY_BYTES, REPORT_FILE, ResultBundle, bundle,
};
pub use deid::{
    DatePolicy, DeidOptions, DeidRecord, DeidentificationLog, deidentify, deidentify_bytes,
    deidentify_report,
};
pub use header::{SeriesHeader, SeriesOptions};
pub use sc::{ScOptions, key_image_objects};
pub use seg::{SegOptions, segmentation};
pub use sr::{SegmentationRef, SrOptions, measurement_report};
pub use uid::UidMapper;

use crate::error::{Error, Result};
use ct_triage_analysis::report::Analysis;

/// Content date and time of an object (DA `YYYYMMDD`, TM `HHMMSS[.ffffff]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContentDateTime {
    date: String,
    time: String,
}

impl ContentDateTime {
    /// A validated date (`YYYYMMDD`) and time (`HHMMSS` or `HHMMSS.ffffff`).
    pub fn new(date: &str, time: &str) -> Result<Self> {
        let bad = |m: &str| Error::InvalidArgument(format!("content date/time {date} {time}: {m}"));
        if parse_da(date).is_none() {
            return Err(bad("date must be a valid YYYYMMDD"));
        }
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let ok = hms.len() == 6
            && hms.bytes().all(|b| b.is_ascii_digit())
            && hms[0..2].parse::<u32>().is_ok_and(|h| h < 24)
            && hms[2..4].parse::<u32>().is_ok_and(|m| m < 60)
            && hms[4..6].parse::<u32>().is_ok_and(|s| s < 61)
            && frac.len() <= 6
            && frac.bytes().all(|b| b.is_ascii_digit())
            && !(time.contains('.') && frac.is_empty());
        if !ok {
            return Err(bad("time must be HHMMSS or HHMMSS.ffffff"));
        }
        Ok(ContentDateTime {
            date: date.to_string(),
            time: time.to_string(),
        })
    }

    /// The UTC date and time of a Unix timestamp (whole seconds).
    pub fn from_unix_seconds(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let s = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        ContentDateTime {
            date: format!("{y:04}{m:02}{d:02}"),
            time: format!("{:02}{:02}{:02}", s / 3600, (s / 60) % 60, s % 60),
        }
    }

    /// The current UTC date and time (the clock of the browser in WASM).
    pub fn now_utc() -> Self {
        let secs = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::from_unix_seconds(secs)
    }

    /// The date, `YYYYMMDD`.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// The time, `HHMMSS[.ffffff]`.
    pub fn time(&self) -> &str {
        &self.time
    }

    /// Date and time as one string (input of the derived UIDs).
    pub(crate) fn stamp(&self) -> String {
        format!("{}{}", self.date, self.time)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// A valid `YYYYMMDD` date as (year, month, day).
pub(crate) fn parse_da(s: &str) -> Option<(i64, u32, u32)> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (
        s[0..4].parse().ok()?,
        s[4..6].parse().ok()?,
        s[6..8].parse().ok()?,
    );
    let back = civil_from_days(days_from_civil(y, m, d));
    (back == (y, m, d)).then_some((y, m, d))
}

/// Series and SOP Instance UID of one object kind (`sr`, `seg`): the given ones,
/// or UIDs derived from the analysis, the kind and the content time, so the
/// same analysis exported at the same time gets the same UIDs.
pub(crate) fn object_uids(
    a: &Analysis,
    kind: &str,
    series: Option<&String>,
    instance: Option<&String>,
    when: &ContentDateTime,
) -> (String, String) {
    let key = analysis_key(a);
    let t = when.stamp();
    let derive = |what: String| uid::hash_uid(&[what.as_bytes(), &key, t.as_bytes()]);
    (
        series
            .cloned()
            .unwrap_or_else(|| derive(format!("ct-triage/{kind}-series"))),
        instance
            .cloned()
            .unwrap_or_else(|| derive(format!("ct-triage/{kind}"))),
    )
}

/// SHA-256 of the report without timings: the identity of an analysis, from
/// which the UIDs of the objects written for it are derived.
pub(crate) fn analysis_key(a: &Analysis) -> [u8; 32] {
    uid::digest(&[a.report.without_timings().to_json().as_bytes()])
}

/// Which object an [`ExportedObject`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// The TID 1500 SR.
    Sr,
    /// The segmentation.
    Seg,
    /// A Secondary Capture key image.
    KeyImage,
    /// The Key Object Selection document.
    KeyObjectSelection,
}

/// One DICOM object written for an analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedObject {
    /// File name relative to the output folder: `report.sr.dcm`,
    /// `findings.seg.dcm`, `key-images/finding-N.sc.dcm`,
    /// `key-images/finding-N-zoom.sc.dcm`, `key-objects.kos.dcm`.
    pub file: String,
    /// What it is.
    pub kind: ObjectKind,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID (after de-identification, when applied).
    pub sop_instance_uid: String,
    /// Part 10 bytes.
    pub bytes: Vec<u8>,
}

/// Options of [`export`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// Content date/time of every object. Default `None`: the current UTC time,
    /// taken once so all objects agree.
    pub content: Option<ContentDateTime>,
    /// SR options. Default [`SrOptions::default`]; its `segmentation` is set by [`export`].
    pub sr: SrOptions,
    /// SEG options. Default [`SegOptions::default`].
    pub seg: SegOptions,
    /// Key image options. Default [`ScOptions::default`].
    pub sc: ScOptions,
    /// Key Object Selection options. Default [`kos::KosOptions::default`].
    pub kos: kos::KosOptions,
    /// Write the SEG. Default true.
    pub segmentation: bool,
    /// Write the key images. Default true.
    pub key_images: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            content: None,
            sr: SrOptions::default(),
            seg: SegOptions::default(),
            sc: ScOptions::default(),
            kos: kos::KosOptions::default(),
            segmentation: true,
            key_images: true,
        }
    }
}

impl ExportOptions {
    /// Defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the content date/time of every object.
    pub fn content(mut self, when: ContentDateTime) -> Self {
        self.content = Some(when);
        self
    }
    /// Write the SEG or not.
    pub fn segmentation(mut self, on: bool) -> Self {
        self.segmentation = on;
        self
    }
    /// Write the key images or not.
    pub fn key_images(mut self, on: bool) -> Self {
        self.key_images = on;
        self
    }
}

/// The SR, the SEG (when there is a finding) and the key images of an
/// analysis, as file objects, with the SR referencing the SEG.
fn objects(
    a: &Analysis,
    o: &ExportOptions,
) -> Result<
    Vec<(
        String,
        ObjectKind,
        dicom_object::FileDicomObject<dicom_object::InMemDicomObject>,
    )>,
> {
    let when = o.content.clone().unwrap_or_else(ContentDateTime::now_utc);
    let mut out = Vec::new();
    let mut sr_opts = o.sr.clone();
    sr_opts.header.default_content(&when);
    if o.segmentation {
        let mut seg_opts = o.seg.clone();
        seg_opts.header.default_content(&when);
        if let Some(f) = seg::segmentation_object(a, &seg_opts)? {
            let (series, inst) = seg::uids(a, &seg_opts, &seg_opts.header.when_or(&when));
            sr_opts.segmentation = Some(SegmentationRef {
                sop_instance_uid: inst,
                series_instance_uid: series,
            });
            out.push(("findings.seg.dcm".to_string(), ObjectKind::Seg, f));
        }
    }
    out.insert(
        0,
        (
            "report.sr.dcm".to_string(),
            ObjectKind::Sr,
            sr::measurement_report_object(a, &sr_opts)?,
        ),
    );
    let mut sc_opts = o.sc.clone();
    sc_opts.header.default_content(&when);
    let sc_when = sc_opts.header.when_or(&when);
    if o.key_images {
        for k in &a.key_images {
            for panel in sc::Panel::ALL {
                out.push((
                    panel.file(k),
                    ObjectKind::KeyImage,
                    sc::key_image_object(a, k, panel, &sc_opts, &sc_when)?,
                ));
            }
        }
    }
    if o.key_images
        && let Some(f) = sc::opacity_key_image_object(a, &sc_opts, &sc_when)?
    {
        out.push((sc::OPACITY_FILE.to_string(), ObjectKind::KeyImage, f));
    }
    let mut kos_opts = o.kos.clone();
    kos_opts.header.default_content(&when);
    if let Some(f) = kos::key_object_selection(a, &kos_opts, &sc_opts, o.key_images)? {
        out.push((
            "key-objects.kos.dcm".to_string(),
            ObjectKind::KeyObjectSelection,
            f,
        ));
    }
    Ok(out)
}

fn finish(
    file: String,
    kind: ObjectKind,
    f: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>,
) -> Result<ExportedObject> {
    Ok(ExportedObject {
        bytes: build::to_bytes(f, &file)?,
        sop_class_uid: f
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string(),
        sop_instance_uid: f
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string(),
        file,
        kind,
    })
}

/// Write the SR, SEG and key images of an analysis (SR first).
pub fn export(a: &Analysis, o: &ExportOptions) -> Result<Vec<ExportedObject>> {
    objects(a, o)?
        .into_iter()
        .map(|(file, kind, f)| finish(file, kind, &f))
        .collect()
}

/// [`export`], then de-identify every object with `d` and `mapper` (one
/// mapper for the whole run keeps the references between the objects, and to
/// source images de-identified with the same mapper, intact). Returns the
/// objects and one [`DeidRecord`] per object, in the same order.
pub fn export_deidentified(
    a: &Analysis,
    o: &ExportOptions,
    d: &DeidOptions,
    mapper: &mut UidMapper,
) -> Result<(Vec<ExportedObject>, Vec<DeidRecord>)> {
    let mut objs = Vec::new();
    let mut records = Vec::new();
    for (file, kind, mut f) in objects(a, o)? {
        let mut rec = deidentify(&mut f, d, mapper)?;
        rec.file = Some(file.clone());
        objs.push(finish(file, kind, &f)?);
        records.push(rec);
    }
    Ok((objs, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(parse_da("20230229"), None);
        assert_eq!(parse_da("20240229"), Some((2024, 2, 29)));
        let t = ContentDateTime::from_unix_seconds(1_704_164_645); // 2024-01-02 03:04:05 UTC
        assert_eq!((t.date(), t.time()), ("20240102", "030405"));
        assert!(ContentDateTime::new("20240102", "030405.5").is_ok());
        assert!(ContentDateTime::new("2024012", "030405").is_err());
        assert!(ContentDateTime::new("20240102", "250405").is_err());
    }
}
