//! Stage tests on a synthetic chest phantom (1 mm isotropic): the lung region
//! keeps a broad-based chest-wall mass but not the heart, every detection
//! channel keeps its own budget when vessels crowd the volume, and the
//! measure stage segments a part-solid nodule with its ground-glass part.
//!
//! The phantom is deliberately simple (ellipsoids, tubes, no texture): these
//! tests pin the stages' rules; how well they hold on real CT is measured by
//! the lesion-insertion harness (`tests/insertion/`).

use ct_triage_core::candidates::{self, CandidateOptions, Channel};
use ct_triage_core::lungs::{self, LungOptions};
use ct_triage_core::measure::{self, MeasureOptions};
use ct_triage_core::pipeline::AcceptRules;
use ct_triage_core::progress::NoProgress;
use ct_triage_core::report::NoduleType;
use ct_triage_core::volume::{Geometry, Volume};
use ndarray::Array3;

const N: [usize; 3] = [200, 160, 120]; // x, y, z (mm)

/// A deterministic pseudo-random number in [-1, 1) from a voxel index.
fn hash_noise(i: usize, j: usize, k: usize) -> f64 {
    let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (k as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// What to draw into the phantom besides body and lungs.
#[derive(Default)]
struct Extras {
    /// A mass on the right lateral chest wall: centre on the pleura, radius mm.
    chest_wall_mass: Option<f64>,
    /// Vessels: number of straight tubes (radius 1.5 mm) through the lungs.
    vessels: usize,
    /// Spheres (centre x, y, z in mm; radius; HU).
    spheres: Vec<([f64; 3], f64, f64)>,
    /// A part-solid nodule: centre, total radius, core radius.
    part_solid: Option<([f64; 3], f64, f64)>,
    /// HU of the part-solid nodule's ground-glass part (default −600).
    halo_hu: Option<f64>,
    /// Calcified foci (400 HU spheres of radius 1.5 mm) inside the chest-wall mass.
    mass_calcified: bool,
}

fn ell(p: [f64; 3], c: [f64; 3], r: [f64; 3]) -> f64 {
    (0..3).map(|a| ((p[a] - c[a]) / r[a]).powi(2)).sum::<f64>()
}

fn phantom(x: &Extras) -> Volume {
    let [nx, ny, nz] = N;
    let right_c = [60.0, 80.0, 60.0];
    let left_c = [140.0, 80.0, 60.0];
    let lung_r = [32.0, 48.0, 70.0];
    let wall_mass_c = [right_c[0] - lung_r[0], 80.0, 60.0];
    // vessels: tubes along random-ish directions through lung centres
    let tubes: Vec<([f64; 3], [f64; 3])> = (0..x.vessels)
        .map(|t| {
            let c = if t % 2 == 0 { right_c } else { left_c };
            let a = t as f64 * 2.399;
            let d = [a.cos() * 0.8, a.sin() * 0.8, 0.6];
            let l = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            let off = [
                (t as f64 * 7.3) % 30.0 - 15.0,
                (t as f64 * 11.1) % 50.0 - 25.0,
                (t as f64 * 5.7) % 60.0 - 30.0,
            ];
            (
                [
                    c[0] + off[0] * 0.6,
                    c[1] + off[1] * 0.6,
                    c[2] + off[2] * 0.6,
                ],
                [d[0] / l, d[1] / l, d[2] / l],
            )
        })
        .collect();
    let hu = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
        let p = [i as f64 + 0.5, j as f64 + 0.5, k as f64 + 0.5];
        // body: elliptic cylinder, outside is air
        if ell([p[0], p[1], 0.0], [100.0, 80.0, 0.0], [95.0, 72.0, 1.0]) > 1.0 {
            return -1000;
        }
        let mut v = 40.0; // soft tissue (chest wall, mediastinum, heart)
        if ell([p[0], p[1], 0.0], [100.0, 80.0, 0.0], [90.0, 67.0, 1.0]) > 0.92 {
            v = 500.0; // a ring of "ribs"
        }
        let in_right = ell(p, right_c, lung_r) <= 1.0;
        let in_left = ell(p, left_c, lung_r) <= 1.0;
        if in_right || in_left {
            v = -850.0 + 25.0 * hash_noise(i, j, k);
            for (c, d) in &tubes {
                let w = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
                let t = w[0] * d[0] + w[1] * d[1] + w[2] * d[2];
                let q = [w[0] - t * d[0], w[1] - t * d[1], w[2] - t * d[2]];
                if (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]).sqrt() <= 1.5 {
                    v = 40.0;
                }
            }
        }
        for (c, r, h) in &x.spheres {
            if ell(p, *c, [*r; 3]) <= 1.0 {
                v = *h;
            }
        }
        if let Some((c, r, rc)) = x.part_solid {
            if ell(p, c, [r; 3]) <= 1.0 {
                v = x.halo_hu.unwrap_or(-600.0) + 20.0 * hash_noise(i, j, k);
            }
            if ell(p, c, [rc; 3]) <= 1.0 {
                v = 30.0;
            }
        }
        if let Some(r) = x.chest_wall_mass
            && ell(p, wall_mass_c, [r; 3]) <= 1.0
        {
            v = 35.0;
            let foci = [[8.0, 0.0, 0.0], [9.0, 6.0, 4.0], [10.0, -6.0, -4.0]];
            if x.mass_calcified
                && foci.iter().any(|d| {
                    let fc = [
                        wall_mass_c[0] + d[0],
                        wall_mass_c[1] + d[1],
                        wall_mass_c[2] + d[2],
                    ];
                    ell(p, fc, [1.5; 3]) <= 1.0
                })
            {
                v = 400.0;
            }
        }
        v.round() as i16
    });
    Volume {
        hu,
        geometry: Geometry {
            size: [nx, ny, nz],
            spacing: [1.0; 3],
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        },
    }
}

/// Share of the voxels matching `pred` that the lung region holds.
fn region_share(v: &Volume, l: &lungs::LungMasks, pred: impl Fn([f64; 3]) -> bool) -> f64 {
    let (mut n, mut inside) = (0usize, 0usize);
    for ((k, j, i), &r) in l.region.indexed_iter() {
        if pred([i as f64 + 0.5, j as f64 + 0.5, k as f64 + 0.5]) && v.hu[[k, j, i]] > -300 {
            n += 1;
            inside += usize::from(r != 0);
        }
    }
    inside as f64 / n.max(1) as f64
}

#[test]
fn region_keeps_a_broad_based_chest_wall_mass_but_not_the_heart() {
    // A 40 mm mass centred on the lateral pleura of the right lung: half of it
    // bulges into the lung, half lies in the chest wall.
    let v = phantom(&Extras {
        chest_wall_mass: Some(20.0),
        ..Extras::default()
    });
    let l = lungs::segment(&v, &LungOptions::default(), &NoProgress).expect("lungs");
    assert!(l.inconclusive.is_none(), "{:?}", l.inconclusive);
    let mass_c = [60.0 - 32.0, 80.0, 60.0];
    // The part of the mass that bulges into the lung, beyond the lung's hull
    // (6 mm medial to the lung's lateral pole; the cap between the pole and the
    // hull is where the lung's surface would have been and cannot be known).
    let in_bulge = |p: [f64; 3]| ell(p, mass_c, [20.0; 3]) <= 1.0 && p[0] >= mass_c[0] + 6.0;
    let bulge = region_share(&v, &l, in_bulge);
    assert!(
        bulge >= 0.7,
        "only {:.0} % of the mass's bulge is in the region",
        bulge * 100.0
    );
    // The mediastinum/heart between the lungs (x 95–105) stays out.
    let heart = region_share(&v, &l, |p| {
        (95.0..105.0).contains(&p[0])
            && (50.0..110.0).contains(&p[1])
            && (20.0..100.0).contains(&p[2])
    });
    assert!(
        heart < 0.02,
        "{:.1} % of the mediastinum is in the region",
        heart * 100.0
    );
    // Without the 3-D rule (closing 0) the bulge is not in the region: the rule is what brings it in.
    let off = LungOptions {
        lesion_closing_mm: 0.0,
        ..LungOptions::default()
    };
    let l0 = lungs::segment(&v, &off, &NoProgress).expect("lungs");
    let bulge0 = region_share(&v, &l0, in_bulge);
    assert!(
        bulge0 < 0.2,
        "without the 3-D rule {:.0} % (the rule is what brings it in)",
        bulge0 * 100.0
    );
}

#[test]
fn every_channel_keeps_its_own_budget_when_vessels_crowd_the_lungs() {
    // 60 vessels, one solid 6 mm nodule, one 14 mm ground-glass nodule.
    let solid_c = [140.0, 60.0, 40.0];
    let ggo_c = [55.0, 95.0, 75.0];
    let v = phantom(&Extras {
        vessels: 60,
        spheres: vec![(solid_c, 3.0, 30.0), (ggo_c, 7.0, -600.0)],
        ..Extras::default()
    });
    let l = lungs::segment(&v, &LungOptions::default(), &NoProgress).expect("lungs");
    let opts = CandidateOptions {
        solid_budget: 12,
        subsolid_budget: 4,
        ..CandidateOptions::default()
    };
    let det = candidates::detect(&v, &l, &opts, &NoProgress).expect("candidates");
    let near = |c: [f64; 3], ch: Channel, tol: f64| {
        det.candidates.iter().any(|x| {
            x.channel == ch
                && (0..3)
                    .map(|a| (x.center_xyz[a] + 0.5 - c[a]).powi(2))
                    .sum::<f64>()
                    .sqrt()
                    <= tol
        })
    };
    let solid = det
        .channels
        .iter()
        .find(|c| c.channel == Channel::Solid)
        .unwrap();
    assert!(
        solid.found > solid.budget,
        "the vessels must crowd the solid channel ({} found)",
        solid.found
    );
    assert!(
        near(ggo_c, Channel::Subsolid, 4.0),
        "the ground-glass nodule is not among the subsolid channel's 4"
    );
    assert!(
        near(solid_c, Channel::Solid, 3.0),
        "the solid nodule is not among the solid channel's 12 (vessels rank below blobs)"
    );
    for c in &det.channels {
        assert!(c.kept <= c.budget + candidates::LARGE_RESERVE);
    }
}

/// A part-solid phantom nodule (total and core radius, mm; ground glass at
/// `halo_hu`) in the left lung, measured from a candidate of `cand_r` mm with `hint`.
fn measure_part_solid(
    total_r: f64,
    core_r: f64,
    halo_hu: f64,
    cand_r: f64,
    hint: measure::LesionHint,
    opts: &MeasureOptions,
) -> measure::Measurement {
    let c = [140.0, 80.0, 60.0];
    let v = phantom(&Extras {
        part_solid: Some((c, total_r, core_r)),
        halo_hu: Some(halo_hu),
        ..Extras::default()
    });
    let l = lungs::segment(&v, &LungOptions::default(), &NoProgress).expect("lungs");
    measure::measure(&v, &v, &l, c, cand_r, hint, opts).expect("segmented")
}

/// [`measure_part_solid`] with the default options and a −600 HU ground-glass
/// part: checks the total diameter within `tol` mm, the type and the solid
/// component within 2 mm.
fn check_part_solid(total_r: f64, core_r: f64, cand_r: f64, hint: measure::LesionHint, tol: f64) {
    let m = measure_part_solid(
        total_r,
        core_r,
        -600.0,
        cand_r,
        hint,
        &MeasureOptions::default(),
    );
    assert!(
        (m.diameter_mm - 2.0 * total_r).abs() <= tol,
        "total {} mm",
        m.diameter_mm
    );
    assert_eq!(m.nodule_type, NoduleType::PartSolid, "{m:?}");
    let s = m.solid_component_mm.expect("solid component");
    assert!((s - 2.0 * core_r).abs() <= 2.0, "solid component {s} mm");
}

#[test]
fn a_part_solid_nodule_is_measured_with_its_ground_glass_part() {
    // Total 20 mm, solid core 8 mm: the old threshold (halfway to the core) cut
    // the ground glass away and measured ~9 mm.
    check_part_solid(10.0, 4.0, 5.0, measure::LesionHint::Subsolid, 2.0);
}

#[test]
fn a_wide_ground_glass_part_around_a_small_core_found_at_the_core_scale_is_measured_whole() {
    // Total 28 mm, solid core 8 mm, found by the solid channel at the core's
    // scale (radius 4 mm): the box and growth limit sized for the core hold
    // less than the ground glass (the harness' part-solid 20–30 mm nodules
    // came out as 10 mm solid, Lung-RADS 4A or 3 instead of 4B). The halo is
    // measured again in a box sized for it.
    check_part_solid(14.0, 4.0, 4.0, measure::LesionHint::Solid, 2.5);
}

#[test]
fn a_faint_ground_glass_halo_is_measured_by_its_attenuation() {
    // Ground glass at −720 HU around a 6 mm solid core: 130 HU above the lung
    // (−850), below the 150 HU rise of `halo_min_hu`, but ground glass by its
    // attenuation (the usual quantitative range starts at about −750 HU) and
    // all around the core (`halo_ggo_hu`, `halo_min_rise_hu`). Lung2's
    // part-solid nodules had rings 125–145 HU above the lung and were measured
    // by their core alone (Lung-RADS 2 or 4A instead of 3 or 4B).
    let opts = MeasureOptions::default();
    let m = measure_part_solid(7.0, 3.0, -720.0, 3.0, measure::LesionHint::Solid, &opts);
    assert!(
        (m.diameter_mm - 14.0).abs() <= 2.5,
        "total {} mm",
        m.diameter_mm
    );
    assert_eq!(m.nodule_type, NoduleType::PartSolid);
    // The attenuation rule is what finds it: without it, only the core.
    let off = MeasureOptions {
        halo_ggo_hu: 0.0,
        ..opts
    };
    let core = measure_part_solid(7.0, 3.0, -720.0, 3.0, measure::LesionHint::Solid, &off);
    assert!(
        core.diameter_mm < 10.0,
        "without the rule {} mm",
        core.diameter_mm
    );
}

#[test]
fn a_large_homogeneous_chest_wall_mass_is_a_mass_by_the_mass_rule() {
    // A lesion over 3 cm is a mass (Fleischner Society glossary, Hansell et
    // al., Radiology 2008). The mass rule (`AcceptRules::rule_mass_*`) reports
    // a solid, homogeneous, non-calcified mass-channel structure of that size
    // even when the classifier's score is below its threshold: the harness'
    // 70 mm costal mass in lung2 scored 0.14 and was missed.
    let rules = AcceptRules::default();
    let mass = |r: f64, calcified: bool| {
        let v = phantom(&Extras {
            chest_wall_mass: Some(r),
            mass_calcified: calcified,
            ..Extras::default()
        });
        let l = lungs::segment(&v, &LungOptions::default(), &NoProgress).expect("lungs");
        // The candidate sits in the part of the mass that bulges into the lung.
        let c = [60.0 - 32.0 + 0.4 * r, 80.0, 60.0];
        measure::measure(
            &v,
            &v,
            &l,
            c,
            16.5,
            measure::LesionHint::Mass,
            &MeasureOptions::default(),
        )
        .expect("segmented")
    };
    // A 50 mm mass: about half of it bulges into the lung (the part measured).
    let m = mass(25.0, false);
    assert_eq!(
        rules.mass_rule_misses(&m),
        None,
        "long axis {} mm",
        m.long_axis_mm
    );
    // Calcium in a structure the classifier turned down is the heart, the aorta or bone.
    let c = mass(25.0, true);
    let why = rules.mass_rule_misses(&c).expect("calcified foci");
    assert!(why.contains("calcified"), "{why}");
    // Under 3 cm it is left to the classifier.
    let s = mass(11.0, false);
    let why = rules.mass_rule_misses(&s).expect("small");
    assert!(why.contains("long axis"), "{why}");
}
