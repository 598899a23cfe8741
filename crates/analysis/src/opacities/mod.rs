//! Stage — diffuse lung opacities: ground glass and consolidation measured per
//! lung, per zone and per (approximated) lobe, with a CT severity score.
//!
//! Input ([`OpacityInput`]): the HU volume at the analysis grid, the lung masks
//! with their right/left labels ([`crate::lungs`]), the focal findings to keep
//! out ([`Exclusion`], one per kept measurement) and the lobe approximation of
//! [`crate::anatomy`]. Output: [`Opacities`] (the report's `opacities` section)
//! plus the most affected axial slice. Rules, in order (every threshold is a
//! field of [`OpacityOptions`]):
//!
//! 1. **HU bands inside the lung region.** A voxel of the lung region is
//!    *ground glass* in `[ground_glass_min_hu, consolidation_min_hu)` (−750 to
//!    −300 HU) and *consolidation* in `[consolidation_min_hu, max_hu]` (−300 to
//!    +100 HU); below is aerated lung, above is bone, calcium or contrast.
//! 2. **Focal findings out.** A component (rule 5) with at least half of its
//!    voxels inside one kept finding's segmentation mask grown by
//!    `focal_margin_mm` (4 mm) is that nodule or mass and its margin: dropped.
//!    A component that no single finding covers by half is a diffuse opacity and
//!    is counted whole, the findings' parts included: the focal channels report
//!    pieces of a large opacity as ground-glass nodules, and a lobar
//!    consolidation as a mass (seen on the insertion set), which must not punch
//!    holes in it. Findings above `focal_max_ml` (15 mL) are not treated as
//!    focal: a mass that large is counted as consolidation where it lies in the
//!    lung region (the report cannot tell the two apart by attenuation).
//! 3. **Dependent rim out (detection only).** Within `dependent_rim_mm` (4 mm)
//!    of the lung surface and in the posterior `dependent_fraction` (1/3) of the
//!    lung's antero-posterior extent (a supine patient), band voxels do not
//!    start an opacity: the thin dense band of dependent atelectasis and the
//!    partial-volume rim at the pleura. A thick opacity reaching the rim takes
//!    its rim voxels back in step 6.
//! 4. **Thin bright structures out (opening).** The band mask is pooled to a
//!    2 mm grid (a coarse voxel is opacity when at least half of its 2×2×2
//!    voxels are) and opened with a ball of `open_radius_mm` (4 mm): what
//!    cannot hold that ball — vessels and bronchial walls up to about 8 mm
//!    across, fissures, partial-volume rims — disappears; broad hazy regions
//!    stay. Consolidation is opened on its own band the same way, so a vessel
//!    crossing ground glass is counted as ground glass, not consolidation.
//! 5. **Size and shape of what remains.** Connected components (6-connected,
//!    2 mm grid) smaller than `min_component_ml` (0.1 mL) are dropped, and so
//!    are tubular ones — at most `tubular_max_ml` (5 mL) with a principal-axis
//!    length/width ratio (square root of the ratio of the largest and second
//!    eigenvalue of the voxel coordinates' covariance) of at least
//!    `tubular_elongation` (3): a large vessel or a bronchus wall segment
//!    that survived the opening.
//!    **5b. Hilar and mediastinal structures out.** A component with at least
//!    `mediastinal_share` (half) of its voxels within `mediastinal_mm` (15 mm)
//!    of the mediastinum (in-plane distance) is dropped: the lung region keeps some hilar vessels,
//!    bronchial walls and a rim of the aorta (see [`crate::lungs`]), which have
//!    consolidation HU. The mediastinum is, per axial row, what lies between
//!    the two lungs outside both. Limit: a central, perihilar opacity attached
//!    to the mediastinum is not counted.
//! 6. **Counting at the analysis grid.** The kept coarse regions are grown by
//!    one coarse voxel; inside them, every band voxel of the lung region (not
//!    excluded by rule 2) is counted: consolidation where the kept consolidation
//!    region and the consolidation band meet, ground glass otherwise.
//!
//! Quantities: per lung (`right`, `left`) ground-glass and consolidation mL and
//! percent of that lung's volume; per zone (thirds of each lung's cranio-caudal
//! extent covered by the scan, as the findings' zones); per lobe, with lobes
//! from [`crate::anatomy::LungAnatomy::lobe_at`] when the anatomy is known,
//! otherwise from the zones (right upper / middle / lower third → RUL / RML /
//! RLL; left upper + middle third → LUL, lower third → LLL) — the method string
//! says which; the CT severity score of Pan et al. (Radiology
//! 2020;295:715–721), 0–5 per lobe by percent involvement, 0–25 in total
//! ([`pan_lobe_score`]); distribution: the share of the opacity volume within
//! `peripheral_mm` (20 mm) of the lung surface against that shell's share of
//! the lung volume, unilateral / bilateral, and the predominant zone.
//!
//! This describes a pattern of attenuation; it names no disease. Thresholds
//! are fixed HU bands: contrast, noise and reconstruction kernel move them.

mod map;
pub use map::{OpacityMap, Run, SliceRuns};

use ndarray::Array3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::anatomy::{Lobe, LungAnatomy};
use crate::error::{Error, Result};
use crate::imgproc::{edt2_sq, edt3_sq, neighbours6, open3};
use crate::lungs::{LEFT, LungMasks, RIGHT};
use crate::measure::FindingMask;
use crate::progress::{Progress, Stage};
use crate::report::{Side, Zone};
use crate::volume::{Geometry, Vec3, Volume};

/// The method in words, as written into the report.
pub const METHOD: &str = "HU bands inside the lung region (ground glass -750 to -300 HU, \
consolidation -300 to +100 HU); components at least half inside one focal finding's mask + 4 mm (findings <= 15 mL) dropped, \
larger opacities counted whole; \
the posterior 4 mm rim does not start an opacity (dependent atelectasis); thin bright \
structures (vessels, airway walls, fissures) removed by a 4 mm ball opening on a 2 mm grid; \
components below 0.1 mL, tubular (<= 5 mL, length/width >= 3) or mostly within 15 mm of the \
mediastinum (hilar vessels, aorta) dropped; counted at the \
analysis grid. CT severity score: Pan et al., Radiology 2020;295:715-721 (0-5 per lobe, \
0-25 in total).";

/// Options of the opacity stage. Defaults are documented per field; builder
/// methods set one field each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpacityOptions {
    /// Lowest HU of ground glass. Default −750.
    pub ground_glass_min_hu: i16,
    /// Lowest HU of consolidation (the top of ground glass, exclusive). Default −300.
    pub consolidation_min_hu: i16,
    /// Highest HU of consolidation (above: bone, calcium, contrast). Default +100.
    pub max_hu: i16,
    /// Radius (mm) of the ball a region must hold to be an opacity (rule 4). Default 4 mm.
    pub open_radius_mm: f64,
    /// Smallest component (mL) kept (rule 5). Default 0.1 mL.
    pub min_component_ml: f64,
    /// Largest component (mL) the tubularity rule may drop (rule 5). Default 5 mL.
    pub tubular_max_ml: f64,
    /// Principal-axis length/width ratio at or above which a component is tubular. Default 3.
    pub tubular_elongation: f64,
    /// Depth (mm) of the posterior pleural rim that does not start an opacity (rule 3). Default 4 mm.
    pub dependent_rim_mm: f64,
    /// Posterior share of each lung's antero-posterior extent where rule 3 applies. Default 1/3.
    pub dependent_fraction: f64,
    /// Distance (mm) to the mediastinum within which a component's voxels count as
    /// central (rule 5b). Default 15 mm.
    pub mediastinal_mm: f64,
    /// Share of a component's voxels within `mediastinal_mm` of the mediastinum at or
    /// above which it is dropped as hilar or mediastinal (rule 5b). Default 0.5.
    pub mediastinal_share: f64,
    /// Margin (mm) a focal finding's mask is grown by (rule 2). Default 4 mm.
    pub focal_margin_mm: f64,
    /// Largest finding (mL, its mask) that rule 2 treats as focal: a larger "mass" is
    /// what the mass channel makes of a lobar consolidation. Default 15 mL (a 30 mm ball: the nodule / mass boundary).
    pub focal_max_ml: f64,
    /// Depth (mm) of the peripheral shell for the distribution. Default 20 mm.
    pub peripheral_mm: f64,
    /// Lobe involvement (percent) below which a lobe scores 0 rather than 1 (threshold
    /// noise; the visual score of Pan et al. has no such floor). Default 0.5 %.
    pub min_lobe_percent: f64,
    /// Involvement (percent of that lung) at or above which a lung counts as involved
    /// (unilateral / bilateral). Default 1 %.
    pub involved_lung_percent: f64,
}

impl Default for OpacityOptions {
    fn default() -> Self {
        OpacityOptions {
            ground_glass_min_hu: -750,
            consolidation_min_hu: -300,
            max_hu: 100,
            open_radius_mm: 4.0,
            min_component_ml: 0.1,
            tubular_max_ml: 5.0,
            tubular_elongation: 3.0,
            dependent_rim_mm: 4.0,
            dependent_fraction: 1.0 / 3.0,
            mediastinal_mm: 15.0,
            mediastinal_share: 0.5,
            focal_margin_mm: 4.0,
            focal_max_ml: 15.0,
            peripheral_mm: 20.0,
            min_lobe_percent: 0.5,
            involved_lung_percent: 1.0,
        }
    }
}

impl OpacityOptions {
    /// Set the ground-glass band's lowest HU.
    pub fn ground_glass_min_hu(mut self, v: i16) -> Self {
        self.ground_glass_min_hu = v;
        self
    }
    /// Set the consolidation band's lowest HU.
    pub fn consolidation_min_hu(mut self, v: i16) -> Self {
        self.consolidation_min_hu = v;
        self
    }
    /// Set the highest HU counted.
    pub fn max_hu(mut self, v: i16) -> Self {
        self.max_hu = v;
        self
    }
    /// Set the opening radius (mm).
    pub fn open_radius_mm(mut self, v: f64) -> Self {
        self.open_radius_mm = v;
        self
    }
    /// Set the smallest component kept (mL).
    pub fn min_component_ml(mut self, v: f64) -> Self {
        self.min_component_ml = v;
        self
    }
    /// Set the tubularity rule (largest volume in mL, elongation ratio).
    pub fn tubular(mut self, max_ml: f64, elongation: f64) -> Self {
        self.tubular_max_ml = max_ml;
        self.tubular_elongation = elongation;
        self
    }
    /// Set the dependent rim (depth in mm, posterior share of the lung).
    pub fn dependent_rim(mut self, mm: f64, fraction: f64) -> Self {
        self.dependent_rim_mm = mm;
        self.dependent_fraction = fraction;
        self
    }
    /// Set the mediastinal rule (distance in mm, share of the component).
    pub fn mediastinal(mut self, mm: f64, share: f64) -> Self {
        self.mediastinal_mm = mm;
        self.mediastinal_share = share;
        self
    }
    /// Set the margin around focal findings (mm).
    pub fn focal_margin_mm(mut self, v: f64) -> Self {
        self.focal_margin_mm = v;
        self
    }
    /// Set the peripheral shell depth (mm).
    pub fn peripheral_mm(mut self, v: f64) -> Self {
        self.peripheral_mm = v;
        self
    }
    /// Set the lobe floor of the severity score (percent).
    pub fn min_lobe_percent(mut self, v: f64) -> Self {
        self.min_lobe_percent = v;
        self
    }
    /// Set the involvement at which a lung counts as involved (percent).
    pub fn involved_lung_percent(mut self, v: f64) -> Self {
        self.involved_lung_percent = v;
        self
    }
}

/// A focal finding to keep out: the centres of its segmentation mask's voxels
/// (LPS mm) and half the size of a source voxel along each grid axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    /// Centres of the mask's voxels, LPS mm.
    pub points_lps_mm: Vec<Vec3>,
    /// Half a source voxel along x, y, z (mm): each point stands for that box.
    pub half_voxel_mm: Vec3,
}

impl Exclusion {
    /// The voxels of a finding's `mask` on the grid `source`.
    pub fn from_mask(mask: &FindingMask, source: &Geometry) -> Exclusion {
        let [ox, oy, oz] = mask.origin_xyz;
        let points_lps_mm = mask
            .mask
            .indexed_iter()
            .filter(|(_, m)| **m)
            .map(|((k, j, i), _)| {
                source.voxel_to_patient([(ox + i) as f64, (oy + j) as f64, (oz + k) as f64])
            })
            .collect();
        Exclusion {
            points_lps_mm,
            half_voxel_mm: source.spacing.map(|s| s / 2.0),
        }
    }
}

/// What the opacity stage reads.
#[derive(Debug, Clone, Copy)]
pub struct OpacityInput<'a> {
    /// The HU volume at the analysis grid.
    pub iso: &'a Volume,
    /// The lung masks on that grid (labels [`RIGHT`], [`LEFT`]).
    pub lungs: &'a LungMasks,
    /// Focal findings to keep out.
    pub exclude: &'a [Exclusion],
    /// The lobe approximation (landmarks), when computed.
    pub anatomy: Option<&'a LungAnatomy>,
}

/// Ground glass and consolidation in one zone of one lung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ZoneOpacity {
    /// Upper, middle or lower third of the lung's covered cranio-caudal extent.
    pub zone: Zone,
    /// Lung volume in the zone, mL.
    pub lung_ml: f64,
    /// Ground glass, mL.
    pub ground_glass_ml: f64,
    /// Consolidation, mL.
    pub consolidation_ml: f64,
    /// Ground glass + consolidation, percent of the zone's lung volume.
    pub percent_of_zone: f64,
}

/// Ground glass and consolidation in one lung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LungOpacity {
    /// Lung volume (the lung region of the lung stage), mL.
    pub lung_ml: f64,
    /// Ground glass, mL.
    pub ground_glass_ml: f64,
    /// Consolidation, mL.
    pub consolidation_ml: f64,
    /// Ground glass + consolidation, percent of this lung's volume.
    pub percent_of_lung: f64,
    /// Ground glass, percent of this lung's volume.
    pub ground_glass_percent: f64,
    /// Consolidation, percent of this lung's volume.
    pub consolidation_percent: f64,
    /// Per zone, upper first.
    pub zones: Vec<ZoneOpacity>,
}

/// One lobe's share of the CT severity score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LobeScore {
    /// The lobe (approximated; see [`Opacities::lobe_method`]).
    pub lobe: Lobe,
    /// Lung volume of the lobe, mL.
    pub lung_ml: f64,
    /// Ground glass + consolidation in the lobe, mL.
    pub involved_ml: f64,
    /// Involvement, percent of the lobe.
    pub percent: f64,
    /// Pan et al. score: 0 none, 1 < 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 > 75 %.
    pub score: u8,
}

/// Where the opacities are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpacityDistribution {
    /// `none`, `unilateral_right`, `unilateral_left` or `bilateral` (a lung counts when
    /// its involvement reaches `involved_lung_percent`).
    pub laterality: String,
    /// Share of the opacity volume within the peripheral shell (0–1).
    pub peripheral_share: f64,
    /// Share of the lung volume within that shell (0–1): what a uniform spread would give.
    pub lung_peripheral_share: f64,
    /// Depth of the shell, mm (distance to the lung surface, mediastinal surface included).
    pub peripheral_mm: f64,
    /// `peripheral` (share ≥ the lung's + 0.15), `central` (≤ the lung's − 0.15),
    /// `diffuse` otherwise, `none` without opacity.
    pub axial: String,
    /// Zone with the highest involvement (percent of the zone, both lungs), if any.
    pub predominant_zone: Option<Zone>,
}

/// The axial slice with the most opacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AffectedSlice {
    /// Source-volume slice index (0-based, stack order).
    pub slice_index: usize,
    /// Image number (InstanceNumber) of that slice.
    pub image_number: Option<i64>,
    /// Ground glass + consolidation on it, cm² (at the analysis grid).
    pub area_cm2: f64,
    /// Its key image in the result folder (`key-images/opacities.png`), when key images were made.
    #[serde(default)]
    pub key_image: Option<String>,
}

/// The report's `opacities` section: diffuse ground glass and consolidation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Opacities {
    /// Right lung.
    pub right: LungOpacity,
    /// Left lung.
    pub left: LungOpacity,
    /// CT severity score (Pan et al. 2020), 0–25: the sum of the lobe scores.
    pub ct_severity_score: u8,
    /// Per lobe (RUL, RML, RLL, LUL, LLL).
    pub lobes: Vec<LobeScore>,
    /// How the lobes were approximated.
    pub lobe_method: String,
    /// Where the opacities are.
    pub distribution: OpacityDistribution,
    /// Emphysema index beside it: percent of lung voxels below −950 HU (%LAA-950).
    pub emphysema_laa950_percent: f64,
    /// The slice with the most opacity (the key image), if any.
    pub most_affected_slice: Option<AffectedSlice>,
    /// The method and its thresholds in words.
    pub method: String,
}

/// What [`measure`] returns: the report section and the most affected slice at the analysis grid.
#[derive(Debug, Clone, PartialEq)]
pub struct OpacityResult {
    /// The report section (its `most_affected_slice` is filled by the pipeline,
    /// which knows the source slices).
    pub opacities: Opacities,
    /// Analysis-grid z index of the slice with the most opacity, and its voxel count.
    pub most_affected_iso_k: Option<(usize, u64)>,
    /// Per voxel of the analysis grid: 0 none, 1 ground glass, 2 consolidation.
    pub labels: Array3<u8>,
}

/// Label of ground glass in [`OpacityResult::labels`].
pub const GROUND_GLASS: u8 = 1;
/// Label of consolidation in [`OpacityResult::labels`].
pub const CONSOLIDATION: u8 = 2;

/// The Pan et al. (Radiology 2020;295:715–721) lobe score of an involvement in
/// percent: 0 none, 1 < 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 > 75 %. Below
/// `floor_percent` (threshold noise) the lobe scores 0.
pub fn pan_lobe_score(percent: f64, floor_percent: f64) -> u8 {
    if percent.is_nan() || percent <= 0.0 || percent < floor_percent {
        0
    } else if percent < 5.0 {
        1
    } else if percent <= 25.0 {
        2
    } else if percent < 50.0 {
        3
    } else if percent <= 75.0 {
        4
    } else {
        5
    }
}

const LOBES: [Lobe; 5] = [
    Lobe::RightUpper,
    Lobe::RightMiddle,
    Lobe::RightLower,
    Lobe::LeftUpper,
    Lobe::LeftLower,
];
const ZONES: [Zone; 3] = [Zone::Upper, Zone::Middle, Zone::Lower];

fn lobe_index(l: Lobe) -> Option<usize> {
    LOBES.iter().position(|&x| x == l)
}

/// The lobe of a zone when the landmarks are unknown (the stated fallback).
fn lobe_of_zone(side: Side, zone: usize) -> Lobe {
    match (side, zone) {
        (Side::Right, 0) => Lobe::RightUpper,
        (Side::Right, 1) => Lobe::RightMiddle,
        (Side::Right, _) => Lobe::RightLower,
        (Side::Left, 0 | 1) => Lobe::LeftUpper,
        (Side::Left, _) => Lobe::LeftLower,
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Segment and quantify the opacities. Never panics on input: an empty lung
/// mask gives zeros.
pub fn measure(
    input: &OpacityInput<'_>,
    opts: &OpacityOptions,
    progress: &dyn Progress,
) -> Result<OpacityResult> {
    let iso = input.iso;
    let region = &input.lungs.region;
    let dim = iso.hu.dim();
    if region.dim() != dim {
        return Err(Error::InvalidArgument(format!(
            "opacities: lung mask {:?} and volume {:?} differ in size",
            region.dim(),
            dim
        )));
    }
    let (nz, ny, nx) = dim;
    let g = &iso.geometry;
    let voxel_ml = g.voxel_volume_mm3() / 1000.0;

    // Bounding box of the lung region, padded for the morphology.
    // One pass per slice: per lung label, the row and column range.
    let per_slice: Vec<[Option<[usize; 4]>; 3]> = (0..nz)
        .into_par_iter()
        .map(|k| {
            let mut r: [Option<[usize; 4]>; 3] = [None; 3];
            for ((j, i), &l) in region.index_axis(ndarray::Axis(0), k).indexed_iter() {
                if l == RIGHT || l == LEFT {
                    let e = r[l as usize].get_or_insert([j, j, i, i]);
                    e[0] = e[0].min(j);
                    e[1] = e[1].max(j);
                    e[2] = e[2].min(i);
                    e[3] = e[3].max(i);
                }
            }
            r
        })
        .collect();
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    // per label: j range and k range
    let mut jr = [[usize::MAX, 0usize]; 3];
    let mut kr = [[usize::MAX, 0usize]; 3];
    for (k, r) in per_slice.iter().enumerate() {
        for (l, e) in r.iter().enumerate() {
            if let Some([j0, j1, i0, i1]) = *e {
                lo = [lo[0].min(k), lo[1].min(j0), lo[2].min(i0)];
                hi = [hi[0].max(k), hi[1].max(j1), hi[2].max(i1)];
                jr[l] = [jr[l][0].min(j0), jr[l][1].max(j1)];
                kr[l] = [kr[l][0].min(k), kr[l][1].max(k)];
            }
        }
    }
    let mut labels = Array3::<u8>::zeros(dim);
    if lo[0] == usize::MAX {
        return Ok(OpacityResult {
            opacities: empty_section(input, opts, "no lung region"),
            most_affected_iso_k: None,
            labels,
        });
    }
    // Coarse factor: 2 on grids finer than 1.5 mm, else 1.
    let f = if g.spacing.iter().all(|&s| s < 1.5) {
        2usize
    } else {
        1
    };
    let pad = f * 4;
    let lo = [0, 1, 2].map(|a| lo[a].saturating_sub(pad));
    let hi = [
        (hi[0] + pad).min(nz - 1),
        (hi[1] + pad).min(ny - 1),
        (hi[2] + pad).min(nx - 1),
    ];
    let cdim = (
        (hi[0] - lo[0] + 1).div_ceil(f),
        (hi[1] - lo[1] + 1).div_ceil(f),
        (hi[2] - lo[2] + 1).div_ceil(f),
    );
    let cs = g.spacing.iter().cloned().fold(0.0, f64::max) * f as f64; // coarse mm

    // Per-lung antero-posterior extent (patient y) and cranio-caudal extent (patient z).
    let py = |j: usize| g.voxel_to_patient([0.0, j as f64, 0.0])[1] - g.origin[1];
    let pz = |k: usize| g.voxel_to_patient([0.0, 0.0, k as f64])[2] - g.origin[2];
    let mut yr = [[f64::MAX, f64::MIN]; 3];
    let mut zr = [[f64::MAX, f64::MIN]; 3];
    for l in [RIGHT as usize, LEFT as usize] {
        if jr[l][0] <= jr[l][1] {
            let (a, b) = (py(jr[l][0]), py(jr[l][1]));
            yr[l] = [a.min(b), a.max(b)];
            let (a, b) = (pz(kr[l][0]), pz(kr[l][1]));
            zr[l] = [a.min(b), a.max(b)];
        }
    }
    // Excluded (focal) voxels: balls in analysis-grid voxels.
    let (gmin, cmin, hmax) = (
        opts.ground_glass_min_hu,
        opts.consolidation_min_hu,
        opts.max_hu,
    );
    // band: 0 none, 1 ground glass, 2 consolidation (lung region only, focal out).
    let band_of = |k: usize, j: usize, i: usize| -> u8 {
        if region[[k, j, i]] == 0 {
            return 0;
        }
        let h = iso.hu[[k, j, i]];
        if h < gmin || h > hmax {
            return 0;
        }
        if h >= cmin { 2 } else { 1 }
    };

    // Coarse grids: lung, opacity band, consolidation band (≥ half of the block).
    let planes: Vec<Vec<[u8; 4]>> = (0..cdim.0)
        .into_par_iter()
        .map(|ck| {
            let mut plane = Vec::with_capacity(cdim.1 * cdim.2);
            for cj in 0..cdim.1 {
                for ci in 0..cdim.2 {
                    let (mut n, mut nl, mut no, mut nc, mut nr) = (0u32, 0u32, 0u32, 0u32, 0u32);
                    for dz in 0..f {
                        let k = lo[0] + ck * f + dz;
                        if k > hi[0] {
                            continue;
                        }
                        for dy in 0..f {
                            let j = lo[1] + cj * f + dy;
                            if j > hi[1] {
                                continue;
                            }
                            for dx in 0..f {
                                let i = lo[2] + ci * f + dx;
                                if i > hi[2] {
                                    continue;
                                }
                                n += 1;
                                let l = region[[k, j, i]];
                                if l != 0 {
                                    nl += 1;
                                    if l == RIGHT {
                                        nr += 1;
                                    }
                                    match band_of(k, j, i) {
                                        1 => no += 1,
                                        2 => {
                                            no += 1;
                                            nc += 1
                                        }
                                        _ => {}
                                    }
                                }
                            }
                        }
                    }
                    let side = if nl == 0 {
                        0
                    } else if 2 * nr >= nl {
                        RIGHT
                    } else {
                        LEFT
                    };
                    let half = |x: u32| u8::from(2 * x >= n && n > 0);
                    plane.push([half(nl), half(no), half(nc), side]);
                }
            }
            plane
        })
        .collect();
    let at = |q: usize| Array3::from_shape_fn(cdim, |(ck, cj, ci)| planes[ck][cj * cdim.2 + ci][q]);
    let c_lung = at(0).mapv(|v| v != 0);
    let mut c_opac = at(1).mapv(|v| v != 0);
    let mut c_cons = at(2).mapv(|v| v != 0);
    let c_side = at(3);
    drop(planes);
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }
    progress.progress(Stage::Opacities, 0.3);

    // Distance (mm) from inside the lung to its surface.
    let outside = c_lung.mapv(|b| !b);
    let depth = edt3_sq(&outside).mapv(|d| (d.min(1e12) as f64).sqrt() * cs);

    // Rule 3: the dependent rim does not start an opacity.
    let rim = opts.dependent_rim_mm.max(0.0);
    let frac = opts.dependent_fraction.clamp(0.0, 1.0);
    for ((ck, cj, ci), o) in c_opac.indexed_iter_mut() {
        if !*o || depth[[ck, cj, ci]] > rim {
            continue;
        }
        let l = c_side[[ck, cj, ci]] as usize;
        if l == 0 || yr[l][0] > yr[l][1] {
            continue;
        }
        let j = (lo[1] + cj * f + f / 2).min(hi[1]);
        let y = py(j);
        let (y0, y1) = (yr[l][0], yr[l][1]);
        // Posterior is +y (LPS) for a supine patient.
        if y >= y1 - frac * (y1 - y0) {
            *o = false;
            c_cons[[ck, cj, ci]] = false;
        }
    }

    // Rule 4: opening.
    let r = (opts.open_radius_mm.max(0.0) / cs) as f32;
    let opac_open = if r > 0.0 { open3(&c_opac, r) } else { c_opac };
    let cons_open = if r > 0.0 { open3(&c_cons, r) } else { c_cons };
    progress.progress(Stage::Opacities, 0.6);

    // Rule 5b: the mediastinum per axial row (outside both lungs, between them).
    let mut mediastinum = Array3::<bool>::from_elem(cdim, false);
    let (mut sum_r, mut n_r, mut sum_l, mut n_l) = (0.0f64, 0u64, 0.0f64, 0u64);
    for ((_, _, ci), &sd) in c_side.indexed_iter() {
        if sd == RIGHT {
            sum_r += ci as f64;
            n_r += 1;
        } else if sd == LEFT {
            sum_l += ci as f64;
            n_l += 1;
        }
    }
    let right_low = n_r == 0 || n_l == 0 || sum_r / n_r as f64 <= sum_l / n_l as f64;
    for ck in 0..cdim.0 {
        for cj in 0..cdim.1 {
            // the medial edges of the two lungs on this row
            let (mut r_edge, mut l_edge) = (None::<usize>, None::<usize>);
            for ci in 0..cdim.2 {
                let sd = c_side[[ck, cj, ci]];
                if !c_lung[[ck, cj, ci]] {
                    continue;
                }
                let (near, far) = if right_low {
                    (RIGHT, LEFT)
                } else {
                    (LEFT, RIGHT)
                };
                if sd == near {
                    r_edge = Some(ci);
                } else if sd == far && l_edge.is_none() {
                    l_edge = Some(ci);
                }
            }
            if let (Some(a), Some(b)) = (r_edge, l_edge)
                && a + 1 < b
            {
                for ci in a + 1..b {
                    if !c_lung[[ck, cj, ci]] {
                        mediastinum[[ck, cj, ci]] = true;
                    }
                }
            }
        }
    }
    // In-plane distance (the mediastinum runs cranio-caudally), per slice in parallel.
    let to_mediastinum = if mediastinum.iter().any(|&b| b) {
        let planes: Vec<ndarray::Array2<f32>> = (0..cdim.0)
            .into_par_iter()
            .map(|ck| edt2_sq(mediastinum.index_axis(ndarray::Axis(0), ck)))
            .collect();
        Some(Array3::from_shape_fn(cdim, |(ck, cj, ci)| {
            planes[ck][[cj, ci]]
        }))
    } else {
        None
    };
    let central_r2 = (opts.mediastinal_mm.max(0.0) / cs).powi(2) as f32;
    let central = |c: (usize, usize, usize)| {
        to_mediastinum
            .as_ref()
            .is_some_and(|d| d[[c.0, c.1, c.2]] <= central_r2)
    };

    // Rule 5: components.
    let coarse_ml = cs * cs * cs / 1000.0;
    // Rule 2: each finding's mask on the coarse grid (the finding's index + 1; the
    // first finding wins where masks meet), grown by the margin. Findings larger
    // than `focal_max_ml` are not focal here.
    let mut focal_mask = Array3::<u16>::zeros(cdim);
    let cmax = [cdim.0 as i64 - 1, cdim.1 as i64 - 1, cdim.2 as i64 - 1];
    let source_ml = |e: &Exclusion| {
        let h = e.half_voxel_mm;
        e.points_lps_mm.len() as f64 * 8.0 * h[0] * h[1] * h[2] / 1000.0
    };
    for (n, e) in input
        .exclude
        .iter()
        .enumerate()
        .filter(|(n, e)| *n < u16::MAX as usize - 1 && source_ml(e) <= opts.focal_max_ml)
    {
        let h = e.half_voxel_mm;
        for p in &e.points_lps_mm {
            let a = g.patient_to_voxel([p[0] - h[0], p[1] - h[1], p[2] - h[2]]);
            let b = g.patient_to_voxel([p[0] + h[0], p[1] + h[1], p[2] + h[2]]);
            // iso voxel range → coarse range
            let rng = |ax: usize, lo_ax: usize, cm: i64| {
                let (u, v) = (a[ax].min(b[ax]), a[ax].max(b[ax]));
                let c0 = ((u.round() - lo_ax as f64) / f as f64).floor() as i64;
                let c1 = ((v.round() - lo_ax as f64) / f as f64).floor() as i64;
                (c0.max(0), c1.min(cm))
            };
            let (k0, k1) = rng(2, lo[0], cmax[0]);
            let (j0, j1) = rng(1, lo[1], cmax[1]);
            let (i0, i1) = rng(0, lo[2], cmax[2]);
            for ck in k0..=k1 {
                for cj in j0..=j1 {
                    for ci in i0..=i1 {
                        let o = &mut focal_mask[[ck as usize, cj as usize, ci as usize]];
                        if *o == 0 {
                            *o = n as u16 + 1;
                        }
                    }
                }
            }
        }
    }
    for _ in 0..(opts.focal_margin_mm.max(0.0) / cs).round() as usize {
        focal_mask = grow_labels6(&focal_mask);
    }
    let focal = |c: (usize, usize, usize)| focal_mask[[c.0, c.1, c.2]];
    let kept = keep_components(&opac_open, coarse_ml, opts, &central, &focal);
    let cons_kept = ndarray::Zip::from(&cons_open)
        .and(&kept)
        .map_collect(|&c, &k| c && k);
    let kept_d = dilate6(&kept);
    let cons_d = dilate6(&cons_kept);
    if progress.is_cancelled() {
        return Err(Error::Cancelled);
    }

    // Rule 6 and the quantities (integer counts per slice, summed in slice order:
    // deterministic whatever the thread count).
    let side_index = |l: u8| if l == RIGHT { 0usize } else { 1 };
    let anatomy = input.anatomy.filter(|a| a.unknown_reason.is_none());
    let zone_of = |l: usize, z: f64| -> usize {
        let (z0, z1) = (zr[l][0], zr[l][1]);
        if z1 <= z0 {
            return 1;
        }
        // Superior = larger patient z.
        let t = (z1 - z) / (z1 - z0);
        ((t * 3.0).floor() as usize).min(2)
    };
    let slices: Vec<SliceCounts> = (lo[0]..=hi[0])
        .into_par_iter()
        .map(|k| {
            let mut a = Counts::default();
            let mut marks = Vec::new();
            let zk = pz(k);
            for j in lo[1]..=hi[1] {
                for i in lo[2]..=hi[2] {
                    let l = region[[k, j, i]];
                    if l != RIGHT && l != LEFT {
                        continue;
                    }
                    let s = side_index(l);
                    let side = if s == 0 { Side::Right } else { Side::Left };
                    let zone = zone_of(l as usize, zk);
                    let c = [(k - lo[0]) / f, (j - lo[1]) / f, (i - lo[2]) / f];
                    let lobe = match anatomy {
                        Some(an) => {
                            let p = g.voxel_to_patient([i as f64, j as f64, k as f64]);
                            an.lobe_of(side, p)
                        }
                        None => lobe_of_zone(side, zone),
                    };
                    let li = lobe_index(lobe);
                    a.lung[s] += 1;
                    a.zone_lung[s][zone] += 1;
                    if let Some(li) = li {
                        a.lobe_lung[li] += 1;
                    }
                    let in_shell = depth[c] <= opts.peripheral_mm;
                    if in_shell {
                        a.shell_lung += 1;
                    }
                    if !kept_d[c] {
                        continue;
                    }
                    let b = band_of(k, j, i);
                    if b == 0 {
                        continue;
                    }
                    let lab = if b == 2 && cons_d[c] {
                        CONSOLIDATION
                    } else {
                        GROUND_GLASS
                    };
                    marks.push((j, i, lab));
                    if lab == CONSOLIDATION {
                        a.con[s] += 1;
                        a.zone_con[s][zone] += 1;
                    } else {
                        a.ggo[s] += 1;
                        a.zone_ggo[s][zone] += 1;
                    }
                    if let Some(li) = li {
                        a.lobe_inv[li] += 1;
                    }
                    a.opac += 1;
                    if in_shell {
                        a.shell_opac += 1;
                    }
                }
            }
            (a, marks)
        })
        .collect();
    let mut t = Counts::default();
    let mut per_k = vec![0u64; nz];
    for (k, (a, marks)) in (lo[0]..=hi[0]).zip(slices) {
        t.add(&a);
        per_k[k] = a.opac;
        for (j, i, lab) in marks {
            labels[[k, j, i]] = lab;
        }
    }
    let Counts {
        lung: lung_n,
        ggo: ggo_n,
        con: con_n,
        zone_lung,
        zone_ggo,
        zone_con,
        lobe_lung,
        lobe_inv,
        shell_lung,
        shell_opac,
        ..
    } = t;
    progress.progress(Stage::Opacities, 1.0);

    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            round2(100.0 * a as f64 / b as f64)
        }
    };
    let ml = |n: u64| round1(n as f64 * voxel_ml);
    let lung = |s: usize| LungOpacity {
        lung_ml: ml(lung_n[s]),
        ground_glass_ml: ml(ggo_n[s]),
        consolidation_ml: ml(con_n[s]),
        percent_of_lung: pct(ggo_n[s] + con_n[s], lung_n[s]),
        ground_glass_percent: pct(ggo_n[s], lung_n[s]),
        consolidation_percent: pct(con_n[s], lung_n[s]),
        zones: (0..3)
            .map(|z| ZoneOpacity {
                zone: ZONES[z],
                lung_ml: ml(zone_lung[s][z]),
                ground_glass_ml: ml(zone_ggo[s][z]),
                consolidation_ml: ml(zone_con[s][z]),
                percent_of_zone: pct(zone_ggo[s][z] + zone_con[s][z], zone_lung[s][z]),
            })
            .collect(),
    };
    let (right, left) = (lung(0), lung(1));
    let lobes: Vec<LobeScore> = (0..5)
        .map(|li| {
            let p = if lobe_lung[li] == 0 {
                0.0
            } else {
                100.0 * lobe_inv[li] as f64 / lobe_lung[li] as f64
            };
            LobeScore {
                lobe: LOBES[li],
                lung_ml: ml(lobe_lung[li]),
                involved_ml: ml(lobe_inv[li]),
                percent: round2(p),
                score: pan_lobe_score(p, opts.min_lobe_percent),
            }
        })
        .collect();
    let css = lobes.iter().map(|l| l.score).sum();
    let total_opac: u64 = ggo_n.iter().chain(&con_n).sum();
    let total_lung: u64 = lung_n.iter().sum();
    let involved = |p: f64| p >= opts.involved_lung_percent;
    let laterality = match (
        involved(right.percent_of_lung),
        involved(left.percent_of_lung),
    ) {
        (true, true) => "bilateral",
        (true, false) => "unilateral_right",
        (false, true) => "unilateral_left",
        (false, false) => "none",
    };
    let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let ps = share(shell_opac, total_opac);
    let ls = share(shell_lung, total_lung);
    let axial = if total_opac == 0 {
        "none"
    } else if ps >= ls + 0.15 {
        "peripheral"
    } else if ps <= ls - 0.15 {
        "central"
    } else {
        "diffuse"
    };
    let mut best: Option<(usize, f64)> = None;
    for z in 0..3 {
        let inv = zone_ggo[0][z] + zone_ggo[1][z] + zone_con[0][z] + zone_con[1][z];
        let p = share(inv, zone_lung[0][z] + zone_lung[1][z]);
        if inv > 0 && best.is_none_or(|(_, b)| p > b) {
            best = Some((z, p));
        }
    }
    let most = per_k.iter().enumerate().filter(|(_, n)| **n > 0).fold(
        None::<(usize, u64)>,
        |acc, (k, &n)| match acc {
            Some((_, m)) if m >= n => acc,
            _ => Some((k, n)),
        },
    );
    let lobe_method = lobe_method(anatomy.is_some());
    Ok(OpacityResult {
        opacities: Opacities {
            right,
            left,
            ct_severity_score: css,
            lobes,
            lobe_method,
            distribution: OpacityDistribution {
                laterality: laterality.into(),
                peripheral_share: round3(ps),
                lung_peripheral_share: round3(ls),
                peripheral_mm: opts.peripheral_mm,
                axial: axial.into(),
                predominant_zone: best.map(|(z, _)| ZONES[z]),
            },
            emphysema_laa950_percent: round2(input.lungs.summary.laa950_fraction * 100.0),
            most_affected_slice: None,
            method: METHOD.to_string(),
        },
        most_affected_iso_k: most,
        labels,
    })
}

fn lobe_method(landmarks: bool) -> String {
    if landmarks {
        format!("lobes {}", crate::anatomy::METHOD)
    } else {
        "lobes approximated by zones (landmarks unknown): right upper / middle / lower third \
         of the covered lung height = RUL / RML / RLL; left upper + middle third = LUL, lower \
         third = LLL"
            .to_string()
    }
}

/// One slice's counts and its labelled voxels `(j, i, label)`.
type SliceCounts = (Counts, Vec<(usize, usize, u8)>);

/// Voxel counts of one slice (or of all).
#[derive(Debug, Default, Clone)]
struct Counts {
    lung: [u64; 2],
    ggo: [u64; 2],
    con: [u64; 2],
    zone_lung: [[u64; 3]; 2],
    zone_ggo: [[u64; 3]; 2],
    zone_con: [[u64; 3]; 2],
    lobe_lung: [u64; 5],
    lobe_inv: [u64; 5],
    shell_lung: u64,
    shell_opac: u64,
    opac: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        for s in 0..2 {
            self.lung[s] += o.lung[s];
            self.ggo[s] += o.ggo[s];
            self.con[s] += o.con[s];
            for z in 0..3 {
                self.zone_lung[s][z] += o.zone_lung[s][z];
                self.zone_ggo[s][z] += o.zone_ggo[s][z];
                self.zone_con[s][z] += o.zone_con[s][z];
            }
        }
        for l in 0..5 {
            self.lobe_lung[l] += o.lobe_lung[l];
            self.lobe_inv[l] += o.lobe_inv[l];
        }
        self.shell_lung += o.shell_lung;
        self.shell_opac += o.shell_opac;
        self.opac += o.opac;
    }
}

/// The section with zeros (no lung region).
fn empty_section(input: &OpacityInput<'_>, opts: &OpacityOptions, why: &str) -> Opacities {
    let lung = LungOpacity {
        lung_ml: 0.0,
        ground_glass_ml: 0.0,
        consolidation_ml: 0.0,
        percent_of_lung: 0.0,
        ground_glass_percent: 0.0,
        consolidation_percent: 0.0,
        zones: Vec::new(),
    };
    Opacities {
        right: lung.clone(),
        left: lung,
        ct_severity_score: 0,
        lobes: Vec::new(),
        lobe_method: why.to_string(),
        distribution: OpacityDistribution {
            laterality: "none".into(),
            peripheral_share: 0.0,
            lung_peripheral_share: 0.0,
            peripheral_mm: opts.peripheral_mm,
            axial: "none".into(),
            predominant_zone: None,
        },
        emphysema_laa950_percent: round2(input.lungs.summary.laa950_fraction * 100.0),
        most_affected_slice: None,
        method: METHOD.to_string(),
    }
}

/// Grow a label volume by its 6 neighbours (unlabelled voxels take a neighbour's
/// label, the lowest non-zero one).
fn grow_labels6(m: &Array3<u16>) -> Array3<u16> {
    let dim = m.dim();
    let mut out = m.clone();
    for ((k, j, i), o) in out.indexed_iter_mut() {
        if *o != 0 {
            continue;
        }
        let mut best = 0u16;
        for n in neighbours6(dim, (k, j, i)) {
            let v = m[n];
            if v != 0 && (best == 0 || v < best) {
                best = v;
            }
        }
        *o = best;
    }
    out
}

/// Grow a mask by its 6 neighbours.
fn dilate6(m: &Array3<bool>) -> Array3<bool> {
    let dim = m.dim();
    let mut out = m.clone();
    for ((k, j, i), &v) in m.indexed_iter() {
        if !v {
            continue;
        }
        for n in neighbours6(dim, (k, j, i)) {
            out[n] = true;
        }
    }
    out
}

/// Rule 5: keep the 6-connected components that are large enough and not tubular.
fn keep_components(
    m: &Array3<bool>,
    voxel_ml: f64,
    opts: &OpacityOptions,
    central: &dyn Fn((usize, usize, usize)) -> bool,
    focal: &dyn Fn((usize, usize, usize)) -> u16,
) -> Array3<bool> {
    let dim = m.dim();
    let mut seen = Array3::<bool>::from_elem(m.dim(), false);
    let mut out = Array3::<bool>::from_elem(m.dim(), false);
    let mut stack = Vec::new();
    let mut comp: Vec<(usize, usize, usize)> = Vec::new();
    for ((k, j, i), &v) in m.indexed_iter() {
        if !v || seen[[k, j, i]] {
            continue;
        }
        comp.clear();
        stack.push((k, j, i));
        seen[[k, j, i]] = true;
        while let Some((a, b, c)) = stack.pop() {
            comp.push((a, b, c));
            for n in neighbours6(dim, (a, b, c)) {
                if m[n] && !seen[n] {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        let vol = comp.len() as f64 * voxel_ml;
        if vol < opts.min_component_ml {
            continue;
        }
        if vol <= opts.tubular_max_ml && elongation(&comp) >= opts.tubular_elongation {
            continue;
        }
        let mut per: Vec<(u16, usize)> = Vec::new();
        for &c in &comp {
            let o = focal(c);
            if o != 0 {
                match per.iter_mut().find(|(l, _)| *l == o) {
                    Some(e) => e.1 += 1,
                    None => per.push((o, 1)),
                }
            }
        }
        if per.iter().any(|&(_, n)| 2 * n >= comp.len()) {
            continue;
        }
        let n_central = comp.iter().filter(|&&c| central(c)).count();
        if n_central as f64 >= opts.mediastinal_share * comp.len() as f64 && n_central > 0 {
            continue;
        }
        for &(a, b, c) in &comp {
            out[[a, b, c]] = true;
        }
    }
    out
}

/// Principal-axis length/width ratio: √(λ1 / λ2) of the coordinates' covariance.
fn elongation(v: &[(usize, usize, usize)]) -> f64 {
    let n = v.len() as f64;
    if v.len() < 3 {
        return 1.0;
    }
    let mut m = [0.0f64; 3];
    for &(a, b, c) in v {
        m[0] += a as f64;
        m[1] += b as f64;
        m[2] += c as f64;
    }
    m = m.map(|x| x / n);
    let mut cov = [[0.0f64; 3]; 3];
    for &(a, b, c) in v {
        let d = [a as f64 - m[0], b as f64 - m[1], c as f64 - m[2]];
        for r in 0..3 {
            for s in 0..3 {
                cov[r][s] += d[r] * d[s] / n;
            }
        }
    }
    let ev = sym3_eigenvalues(cov);
    // Add the variance of a voxel (1/12) so one-voxel-thin shapes stay finite.
    let (l1, l2) = (ev[0] + 1.0 / 12.0, ev[1] + 1.0 / 12.0);
    (l1 / l2).sqrt()
}

/// Eigenvalues of a symmetric 3×3 matrix, largest first (closed form).
fn sym3_eigenvalues(a: [[f64; 3]; 3]) -> [f64; 3] {
    let p1 = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
    let q = (a[0][0] + a[1][1] + a[2][2]) / 3.0;
    if p1 < 1e-12 {
        let mut e = [a[0][0], a[1][1], a[2][2]];
        e.sort_by(|x, y| y.total_cmp(x));
        return e;
    }
    let p2 = (a[0][0] - q).powi(2) + (a[1][1] - q).powi(2) + (a[2][2] - q).powi(2) + 2.0 * p1;
    let p = (p2 / 6.0).sqrt();
    let mut b = [[0.0; 3]; 3];
    for r in 0..3 {
        for s in 0..3 {
            b[r][s] = (a[r][s] - if r == s { q } else { 0.0 }) / p;
        }
    }
    let det = b[0][0] * (b[1][1] * b[2][2] - b[1][2] * b[2][1])
        - b[0][1] * (b[1][0] * b[2][2] - b[1][2] * b[2][0])
        + b[0][2] * (b[1][0] * b[2][1] - b[1][1] * b[2][0]);
    let r = (det / 2.0).clamp(-1.0, 1.0);
    let phi = r.acos() / 3.0;
    let e1 = q + 2.0 * p * phi.cos();
    let e3 = q + 2.0 * p * (phi + 2.0 * std::f64::consts::PI / 3.0).cos();
    let e2 = 3.0 * q - e1 - e3;
    [e1, e2, e3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use crate::report::LungSummary;

    const N: usize = 64;

    /// A 64 mm cube at 1 mm: lung region [4, 60) on every axis at −850 HU,
    /// right lung x < 32, left lung x ≥ 32; soft tissue (+40 HU) outside.
    fn phantom() -> (Volume, LungMasks) {
        let geometry = Geometry {
            size: [N, N, N],
            spacing: [1.0; 3],
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let inside = |v: usize| (4..60).contains(&v);
        let region = Array3::from_shape_fn((N, N, N), |(k, j, i)| {
            if inside(k) && inside(j) && inside(i) {
                if i < 32 { RIGHT } else { LEFT }
            } else {
                0
            }
        });
        let hu = region.mapv(|l| if l == 0 { 40i16 } else { -850 });
        let lungs = LungMasks {
            aerated: region.clone(),
            region,
            summary: LungSummary {
                right_ml: 0.0,
                left_ml: 0.0,
                extent_mm: 56.0,
                truncated: false,
                laa950_fraction: 0.012,
            },
            inconclusive: None,
            z_range: Some((4, 59)),
        };
        (Volume { hu, geometry }, lungs)
    }

    fn paint(v: &mut Volume, hu: i16, f: impl Fn(f64, f64, f64) -> bool) -> usize {
        let mut n = 0;
        for ((k, j, i), h) in v.hu.indexed_iter_mut() {
            if (4..60).contains(&k)
                && (4..60).contains(&j)
                && (4..60).contains(&i)
                && f(i as f64, j as f64, k as f64)
            {
                *h = hu;
                n += 1;
            }
        }
        n
    }

    fn run(v: &Volume, l: &LungMasks, ex: &[Exclusion], o: &OpacityOptions) -> Opacities {
        let input = OpacityInput {
            iso: v,
            lungs: l,
            exclude: ex,
            anatomy: None,
        };
        measure(&input, o, &NoProgress).expect("runs").opacities
    }

    fn total(o: &Opacities) -> f64 {
        o.right.ground_glass_ml
            + o.right.consolidation_ml
            + o.left.ground_glass_ml
            + o.left.consolidation_ml
    }

    #[test]
    fn normal_parenchyma_reads_zero() {
        let (v, l) = phantom();
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert_eq!(total(&o), 0.0);
        assert_eq!(o.ct_severity_score, 0);
        assert_eq!(o.distribution.laterality, "none");
        assert!((o.emphysema_laa950_percent - 1.2).abs() < 1e-9);
    }

    /// Rule 1 + 6: a broad slab of −600 HU is ground glass, counted at its volume,
    /// in the lung it lies in.
    #[test]
    fn ground_glass_slab_counts_in_its_lung() {
        let (mut v, l) = phantom();
        let n = paint(&mut v, -600, |x, y, z| {
            (8.0..28.0).contains(&x) && (14.0..34.0).contains(&y) && (20.0..40.0).contains(&z)
        });
        let o = run(&v, &l, &[], &OpacityOptions::default());
        let truth = n as f64 / 1000.0;
        assert!(
            (o.right.ground_glass_ml - truth).abs() <= 0.1 * truth,
            "{} vs {truth}",
            o.right.ground_glass_ml
        );
        assert_eq!(o.right.consolidation_ml, 0.0);
        assert_eq!(
            total(&o) - o.right.ground_glass_ml,
            0.0,
            "nothing on the left"
        );
        assert_eq!(o.distribution.laterality, "unilateral_right");
        // 8 mL of a ~22 mL lung side third... percent is of the right lung's volume.
        let lung_ml = 28.0 * 56.0 * 56.0 / 1000.0;
        assert!((o.right.percent_of_lung - 100.0 * o.right.ground_glass_ml / lung_ml).abs() < 0.1);
    }

    /// Rule 1: −100 HU is consolidation, not ground glass.
    #[test]
    fn consolidation_block_is_consolidation() {
        let (mut v, l) = phantom();
        let n = paint(&mut v, -100, |x, y, z| {
            (36.0..56.0).contains(&x) && (14.0..34.0).contains(&y) && (20.0..40.0).contains(&z)
        });
        let o = run(&v, &l, &[], &OpacityOptions::default());
        let truth = n as f64 / 1000.0;
        assert!((o.left.consolidation_ml - truth).abs() <= 0.1 * truth);
        assert!(o.left.ground_glass_ml < 0.1 * truth);
        assert_eq!(o.distribution.laterality, "unilateral_left");
    }

    /// Rule 4: a vessel (tube of +40 HU, 4 mm across, 40 mm long) does not count.
    #[test]
    fn thin_tube_does_not_count() {
        let (mut v, l) = phantom();
        paint(&mut v, 40, |x, y, z| {
            (x - 16.0).powi(2) + (y - 30.0).powi(2) <= 4.0 && (10.0..50.0).contains(&z)
        });
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert_eq!(total(&o), 0.0);
    }

    /// Rule 5: a large vessel (10 mm across) survives the opening but is tubular.
    #[test]
    fn thick_tube_is_dropped_as_tubular() {
        let (mut v, l) = phantom();
        paint(&mut v, 40, |x, y, z| {
            (x - 16.0).powi(2) + (y - 30.0).powi(2) <= 25.0 && (10.0..50.0).contains(&z)
        });
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert_eq!(total(&o), 0.0);
        // Without the tubularity rule it would count: the rule is what removes it.
        let o = run(&v, &l, &[], &OpacityOptions::default().tubular(0.0, 3.0));
        assert!(total(&o) > 1.0, "{}", total(&o));
    }

    /// Rule 2: a nodule's mask (grown by the margin) does not count; an opacity
    /// mostly outside it does, whole.
    #[test]
    fn nodule_mask_does_not_count() {
        let (mut v, l) = phantom();
        let c = [16.0, 30.0, 30.0];
        paint(&mut v, 40, |x, y, z| {
            (x - c[0]).powi(2) + (y - c[1]).powi(2) + (z - c[2]).powi(2) <= 64.0
        });
        let without = run(&v, &l, &[], &OpacityOptions::default());
        assert!(
            total(&without) > 1.0,
            "a 16 mm ball is broad: it would count"
        );
        let mut mask = Array3::from_elem((17, 17, 17), false);
        for ((k, j, i), m) in mask.indexed_iter_mut() {
            let d2 = (i as f64 - 8.0).powi(2) + (j as f64 - 8.0).powi(2) + (k as f64 - 8.0).powi(2);
            *m = d2 <= 64.0;
        }
        let fm = FindingMask {
            origin_xyz: [8, 22, 22],
            mask,
        };
        let e = Exclusion::from_mask(&fm, &v.geometry);
        assert_eq!(e.points_lps_mm.len(), fm.count());
        // A broad ground-glass slab around and beside the nodule is counted whole.
        let (mut v2, _) = phantom();
        let slab = paint(&mut v2, -600, |x, y, z| {
            (6.0..30.0).contains(&x) && (14.0..46.0).contains(&y) && (14.0..46.0).contains(&z)
        });
        let o = run(
            &v2,
            &l,
            std::slice::from_ref(&e),
            &OpacityOptions::default(),
        );
        assert!(
            (o.right.ground_glass_ml - slab as f64 / 1000.0).abs() < 0.1 * slab as f64 / 1000.0
        );
        let with = run(&v, &l, &[e], &OpacityOptions::default());
        assert_eq!(total(&with), 0.0);
    }

    /// Rule 3: a 10 mm dense band along the posterior pleura (dependent
    /// atelectasis) does not count; the same band anteriorly does.
    #[test]
    fn posterior_rim_band_does_not_count() {
        let (mut v, l) = phantom();
        paint(&mut v, -200, |x, y, _| {
            (8.0..28.0).contains(&x) && y >= 50.0
        });
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert_eq!(total(&o), 0.0, "posterior band");
        let (mut v, l) = phantom();
        paint(&mut v, -200, |x, y, _| (8.0..28.0).contains(&x) && y < 14.0);
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert!(total(&o) > 5.0, "anterior band {}", total(&o));
    }

    /// Rule 5: a component below the smallest size is dropped.
    #[test]
    fn small_component_is_dropped() {
        let (mut v, l) = phantom();
        // a 10 mm cube (1 mL) holds the ball; with a 2 mL minimum it is dropped.
        paint(&mut v, -500, |x, y, z| {
            (10.0..20.0).contains(&x) && (25.0..35.0).contains(&y) && (25.0..35.0).contains(&z)
        });
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert!(total(&o) > 0.5, "{}", total(&o));
        let o = run(
            &v,
            &l,
            &[],
            &OpacityOptions::default().min_component_ml(2.0),
        );
        assert_eq!(total(&o), 0.0);
    }

    /// Pan et al. 2020 lobe score bands and the zone fallback for lobes.
    #[test]
    fn pan_score_bands_and_zone_lobes() {
        assert_eq!(pan_lobe_score(0.0, 0.5), 0);
        assert_eq!(pan_lobe_score(0.3, 0.5), 0);
        assert_eq!(pan_lobe_score(4.9, 0.5), 1);
        assert_eq!(pan_lobe_score(5.0, 0.5), 2);
        assert_eq!(pan_lobe_score(25.0, 0.5), 2);
        assert_eq!(pan_lobe_score(26.0, 0.5), 3);
        assert_eq!(pan_lobe_score(50.0, 0.5), 4);
        assert_eq!(pan_lobe_score(75.0, 0.5), 4);
        assert_eq!(pan_lobe_score(76.0, 0.5), 5);
        assert_eq!(pan_lobe_score(f64::NAN, 0.5), 0);
        // Whole lungs of ground glass: every lobe 5, total 25, bilateral.
        let (mut v, l) = phantom();
        paint(&mut v, -600, |_, _, _| true);
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert_eq!(o.ct_severity_score, 25, "{:?}", o.lobes);
        assert_eq!(o.distribution.laterality, "bilateral");
        assert!(o.lobe_method.contains("zones"));
        assert_eq!(o.lobes.len(), 5);
    }

    /// Zones: an opacity in the upper third (largest patient z) is upper zone.
    #[test]
    fn zone_is_by_patient_height() {
        let (mut v, l) = phantom();
        paint(&mut v, -600, |x, y, z| {
            (8.0..28.0).contains(&x) && (14.0..34.0).contains(&y) && z >= 45.0
        });
        let o = run(&v, &l, &[], &OpacityOptions::default());
        assert_eq!(o.distribution.predominant_zone, Some(Zone::Upper));
        assert!(o.right.zones[0].ground_glass_ml > 0.0);
        assert_eq!(o.right.zones[2].ground_glass_ml, 0.0);
        assert!(o.lobes[0].score > 0 && o.lobes[2].score == 0);
    }

    #[test]
    fn mismatched_mask_is_an_error_not_a_panic() {
        let (v, mut l) = phantom();
        l.region = Array3::zeros((2, 2, 2));
        let input = OpacityInput {
            iso: &v,
            lungs: &l,
            exclude: &[],
            anatomy: None,
        };
        assert!(measure(&input, &OpacityOptions::default(), &NoProgress).is_err());
        l.region = Array3::zeros((N, N, N));
        let input = OpacityInput {
            iso: &v,
            lungs: &l,
            exclude: &[],
            anatomy: None,
        };
        let o = measure(&input, &OpacityOptions::default(), &NoProgress).expect("empty ok");
        assert_eq!(total(&o.opacities), 0.0);
    }
}
