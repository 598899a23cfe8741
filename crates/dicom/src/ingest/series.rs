//! Grouping frames into studies and series (splitting mixed geometries) and
//! choosing the series to analyse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::IngestOptions;
use super::instance::Instance;
use ct_triage_analysis::volume::{Vec3, cross};

/// A frame of a parsed instance: `(instance index, frame index)`.
pub(crate) type FrameId = (usize, usize);

/// One candidate series (a DICOM series, or one geometry of a mixed series).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesEntry {
    /// Identifier to ask for this series: the Series Instance UID, with `#n`
    /// appended when the DICOM series was split by geometry.
    pub key: String,
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// SeriesNumber.
    pub series_number: Option<i64>,
    /// SeriesDescription.
    pub description: Option<String>,
    /// Modality.
    pub modality: String,
    /// Number of instances (files).
    pub instances: usize,
    /// Number of frames (slices).
    pub frames: usize,
    /// Rows × columns.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// Pixel spacing `[row, column]` in mm.
    pub pixel_spacing_mm: [f64; 2],
    /// Nominal slice thickness in mm, when recorded.
    pub slice_thickness_mm: Option<f64>,
    /// `axial`, `coronal`, `sagittal` or `oblique`.
    pub orientation: String,
    /// Transfer syntaxes used by its instances.
    pub transfer_syntaxes: Vec<String>,
    /// Whether this series can be analysed at all.
    pub eligible: bool,
    /// Whether this series was selected for analysis.
    pub selected: bool,
    /// Why it was or was not selected.
    pub reason: String,
}

/// One study with its candidate series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyEntry {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// StudyDate.
    pub study_date: Option<String>,
    /// StudyDescription.
    pub description: Option<String>,
    /// PatientID.
    pub patient_id: Option<String>,
    /// Series of the study.
    pub series: Vec<SeriesEntry>,
}

/// A group of frames sharing study, series and geometry.
#[derive(Debug)]
pub(crate) struct Group {
    pub entry: SeriesEntry,
    pub frames: Vec<FrameId>,
    pub localizer: bool,
}

/// Name of the plane closest to the image orientation.
pub(crate) fn plane_name(o: [Vec3; 2]) -> &'static str {
    let n = cross(o[0], o[1]);
    let (ax, v) = n
        .iter()
        .enumerate()
        .map(|(i, x)| (i, x.abs()))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    if v < 0.9 {
        return "oblique";
    }
    match ax {
        0 => "sagittal",
        1 => "coronal",
        _ => "axial",
    }
}

/// Group all frames by study, series and geometry.
pub(crate) fn group(instances: &[Instance]) -> Vec<Group> {
    // key: (study, series, rounded orientation, rows, cols, rounded spacing)
    type Key = (String, String, [i64; 6], u32, u32, [i64; 2]);
    let mut map: BTreeMap<Key, Vec<FrameId>> = BTreeMap::new();
    for (ii, inst) in instances.iter().enumerate() {
        for (fi, f) in inst.frames.iter().enumerate() {
            let o = [
                f.orientation[0][0],
                f.orientation[0][1],
                f.orientation[0][2],
                f.orientation[1][0],
                f.orientation[1][1],
                f.orientation[1][2],
            ]
            .map(|x| (x * 1000.0).round() as i64);
            let s = f.pixel_spacing.map(|x| (x * 1000.0).round() as i64);
            let key = (
                inst.meta.study_instance_uid.clone(),
                inst.meta.series_instance_uid.clone(),
                o,
                inst.layout.rows,
                inst.layout.columns,
                s,
            );
            map.entry(key).or_default().push((ii, fi));
        }
    }
    // Number the parts of split series.
    let mut parts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for k in map.keys() {
        *parts.entry((k.0.clone(), k.1.clone())).or_default() += 1;
    }
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut groups = Vec::new();
    for (k, frames) in map {
        let sk = (k.0.clone(), k.1.clone());
        let n_parts = parts[&sk];
        let idx = seen.entry(sk).or_default();
        *idx += 1;
        let key = if n_parts > 1 {
            format!("{}#{}", k.1, idx)
        } else {
            k.1.clone()
        };
        let (i0, f0) = frames[0];
        let first = &instances[i0];
        let fr = &first.frames[f0];
        let mut files: Vec<usize> = frames.iter().map(|f| f.0).collect();
        files.dedup();
        let mut ts: Vec<String> = files
            .iter()
            .map(|&i| instances[i].transfer_syntax.clone())
            .collect();
        ts.sort();
        ts.dedup();
        let mut thick: Vec<f64> = frames
            .iter()
            .filter_map(|&(i, f)| instances[i].frames[f].thickness)
            .collect();
        thick.sort_by(f64::total_cmp);
        let localizer = frames
            .iter()
            .any(|&(i, f)| instances[i].frames[f].localizer);
        groups.push(Group {
            entry: SeriesEntry {
                key,
                series_instance_uid: k.1.clone(),
                series_number: first.meta.series_number,
                description: first.meta.series_description.clone(),
                modality: first.meta.modality.clone(),
                instances: files.len(),
                frames: frames.len(),
                rows: first.layout.rows,
                columns: first.layout.columns,
                pixel_spacing_mm: fr.pixel_spacing,
                slice_thickness_mm: thick.get(thick.len() / 2).copied(),
                orientation: plane_name(fr.orientation).to_string(),
                transfer_syntaxes: ts,
                eligible: false,
                selected: false,
                reason: String::new(),
            },
            frames,
            localizer,
        });
    }
    groups
}

/// Mark eligibility and choose one group. Returns the index of the chosen group.
///
/// Eligible: modality CT, not a localizer, at least `min_slices` frames.
/// Among eligible series the one with the most slices wins, then the thinnest
/// reconstruction, then the lowest series number. A series asked for in the
/// options wins if it exists and can be analysed at all.
pub(crate) fn select(groups: &mut [Group], opts: &IngestOptions) -> Option<usize> {
    for g in groups.iter_mut() {
        let e = &mut g.entry;
        e.reason = if e.modality != "CT" {
            format!(
                "modality {} is not CT",
                if e.modality.is_empty() {
                    "(none)"
                } else {
                    &e.modality
                }
            )
        } else if g.localizer {
            "localizer/scout image".to_string()
        } else if e.frames < opts.min_slices {
            format!(
                "only {} slice(s); at least {} are needed for a volume",
                e.frames, opts.min_slices
            )
        } else {
            String::new()
        };
        e.eligible = e.reason.is_empty();
    }
    let rank = |g: &Group| {
        (
            std::cmp::Reverse(g.entry.frames),
            (g.entry.slice_thickness_mm.unwrap_or(f64::MAX) * 1000.0) as i64,
            g.entry.series_number.unwrap_or(i64::MAX),
            g.entry.key.clone(),
        )
    };
    let chosen = if let Some(want) = &opts.series {
        groups
            .iter()
            .position(|g| &g.entry.key == want || &g.entry.series_instance_uid == want)
    } else {
        groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.entry.eligible)
            .min_by_key(|(_, g)| rank(g))
            .map(|(i, _)| i)
    };
    let best = chosen.map(|i| {
        let g = &groups[i];
        (
            g.entry.frames,
            g.entry.slice_thickness_mm,
            g.entry.key.clone(),
        )
    });
    for (i, g) in groups.iter_mut().enumerate() {
        let e = &mut g.entry;
        if Some(i) == chosen {
            e.selected = true;
            let how = if opts.series.is_some() {
                "selected on request"
            } else {
                "selected"
            };
            e.reason = format!(
                "{how}: {} {} slices{}",
                e.orientation,
                e.frames,
                e.slice_thickness_mm
                    .map(|t| format!(", {t} mm thick"))
                    .unwrap_or_default()
            );
        } else if e.eligible
            && let Some((frames, thick, key)) = &best
        {
            e.reason = if e.frames < *frames {
                format!(
                    "fewer slices ({}) than the selected series {key} ({frames})",
                    e.frames
                )
            } else if e.slice_thickness_mm > *thick {
                format!(
                    "thicker reconstruction ({} mm) than the selected series {key} ({} mm)",
                    e.slice_thickness_mm.unwrap_or(f64::NAN),
                    thick.unwrap_or(f64::NAN)
                )
            } else {
                format!("another series ({key}) was selected")
            };
        }
    }
    chosen
}
