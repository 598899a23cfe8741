//! Building one training sample: pick the scene for its kind (a nodule or a
//! negative structure at the candidate position), acquire it, resample it
//! with the core's `to_isotropic` and cut the patch with the core's
//! `extract_patch` — the exact preprocessing of inference.

use ct_triage_core::classify::{Normalization, extract_patch, extract_patch_scaled_into};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::resample::to_isotropic;
use serde::Serialize;

use crate::acquire::{Acquisition, acquire};
use crate::lidc::{Reading, Scan};
use crate::lung1::Lung1;
use crate::noise::ValueNoise;
use crate::rng::Rng;
use crate::scene::*;

/// What is at the candidate position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A LIDC nodule (a reader's shape and ratings).
    Nodule,
    /// On the axis of a vessel.
    Vessel,
    /// A vessel running through the slices (a blob on each axial slice).
    VesselZ,
    /// At a vessel bifurcation.
    Bifurcation,
    /// On the pleura / chest wall surface.
    Pleura,
    /// On an airway wall.
    Airway,
    /// On a fissure.
    Fissure,
    /// Plain lung.
    Lung,
    /// A blob-detector maximum in real CT (lung1).
    Lung1Maximum,
    /// One of the core's own candidates in real CT (lung1), cut from lung1
    /// directly at the scale inference uses (no simulated acquisition).
    Lung1Candidate,
    /// A mass (positive): a LIDC nodule rendered as a lesion 2–3× its size seen
    /// at the coarser scale inference shows masses at — acquisition pixel,
    /// slice and blur divided by the scale, noise by its 1.5th power (the mean of
    /// scale³ voxels) — mostly broad-based on the chest wall.
    Mass,
}

impl Kind {
    /// Negative kinds and their share of the negatives.
    pub const NEGATIVES: [(Kind, f64); 9] = [
        (Kind::Vessel, 0.21),
        (Kind::VesselZ, 0.09),
        (Kind::Bifurcation, 0.17),
        (Kind::Pleura, 0.10),
        (Kind::Airway, 0.08),
        (Kind::Fissure, 0.07),
        (Kind::Lung, 0.05),
        (Kind::Lung1Maximum, 0.08),
        (Kind::Lung1Candidate, 0.15),
    ];

    /// snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Nodule => "nodule",
            Kind::Vessel => "vessel",
            Kind::VesselZ => "vessel_z",
            Kind::Bifurcation => "bifurcation",
            Kind::Pleura => "pleura",
            Kind::Airway => "airway",
            Kind::Fissure => "fissure",
            Kind::Lung => "lung",
            Kind::Lung1Maximum => "lung1_maximum",
            Kind::Lung1Candidate => "lung1_candidate",
            Kind::Mass => "mass",
        }
    }
}

/// How a sample was rendered (recorded in the index).
#[derive(Debug, Clone, Serialize)]
pub struct RenderInfo {
    /// `synthetic` or `lung1`.
    pub background: &'static str,
    /// Nodule touching the chest wall.
    pub juxtapleural: bool,
    /// Vessel touching the nodule.
    pub juxtavascular: bool,
    /// Distance from the nodule centroid (or structure) to the patch centre (mm).
    pub jitter_mm: f64,
    /// Acquisition.
    pub acq: Acquisition,
    /// Contrast-enhanced vessels.
    pub contrast: bool,
    /// The scale the patch shows (1: the model's spacing; masses 2–3).
    pub scale: usize,
}

/// Patch geometry and normalisation shared with the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct PatchSpec {
    /// Patch size `[z, y, x]`.
    pub patch_zyx: [usize; 3],
    /// Isotropic spacing (mm).
    pub spacing_mm: f64,
    /// HU → input mapping.
    pub normalization: Normalization,
}

fn synthetic_parenchyma(rng: &mut Rng) -> Parenchyma {
    let g = rng.unit3();
    let gm = rng.range(0.0, 1.5);
    Parenchyma::Synthetic {
        base: rng.range(-900.0, -810.0),
        grad: [g[0] * gm, g[1] * gm, g[2] * gm],
        tex_amp: rng.range(8.0, 25.0),
        tex: ValueNoise::new(rng, 1.5, 24.0),
        coarse_amp: rng.range(5.0, 20.0),
        coarse: ValueNoise::new(rng, 6.0, 24.0),
    }
}

fn vessel_hu(rng: &mut Rng, contrast: bool) -> f64 {
    if contrast {
        rng.range(120.0, 300.0)
    } else {
        rng.range(25.0, 60.0)
    }
}

fn random_trees(rng: &mut Rng, out: &mut Vec<Capsule>, contrast: bool, n: usize) {
    for _ in 0..n {
        let u = rng.unit3();
        let p = [
            u[0] * rng.range(20.0, 28.0),
            u[1] * rng.range(20.0, 28.0),
            u[2] * rng.range(20.0, 28.0),
        ];
        let d = deflect(
            [-u[0], -u[1], -u[2]],
            rng.range(0.0, 50f64.to_radians()),
            rng,
        );
        let x = rng.f64();
        let r = 0.4 + 2.2 * x * x;
        let hu = vessel_hu(rng, contrast);
        grow_tree(rng, out, p, d, r, hu, 0, 32.0);
    }
}

/// A straight-ish vessel through `through` along `dir`, continued as trees at both ends.
fn vessel_through(rng: &mut Rng, out: &mut Vec<Capsule>, through: V3, dir: V3, r: f64, hu: f64) {
    let l1 = rng.range(14.0, 24.0);
    let l2 = rng.range(14.0, 24.0);
    let a = add(through, dir, -l1);
    let b = add(through, dir, l2);
    let taper = rng.range(0.9, 1.0);
    out.push(Capsule {
        a,
        b: through,
        ra: r / taper,
        rb: r,
        hu,
    });
    let d2 = deflect(dir, rng.range(0.0, 12f64.to_radians()), rng);
    let b2 = add(through, d2, l2);
    let _ = b;
    out.push(Capsule {
        a: through,
        b: b2,
        ra: r,
        rb: r * taper,
        hu,
    });
    grow_tree(rng, out, b2, d2, r * taper, hu, 2, 34.0);
    grow_tree(
        rng,
        out,
        a,
        [-dir[0], -dir[1], -dir[2]],
        r / taper,
        hu,
        2,
        34.0,
    );
}

fn wall_at(rng: &mut Rng, depth_of_origin: f64) -> Wall {
    // Normal mostly in the axial plane (the chest wall surrounds the lungs).
    let phi = rng.range(0.0, 2.0 * std::f64::consts::PI);
    let n = unit([phi.cos(), phi.sin(), rng.range(-0.35, 0.35)]);
    let rc = rng.range(60.0, 160.0);
    let s = add([0.0; 3], n, depth_of_origin);
    let c = add(s, n, -rc);
    let fat0 = rng.range(0.3, 1.0);
    let fat1 = fat0 + rng.range(0.5, 4.0);
    let mut ribs = Vec::new();
    if rng.chance(0.6) {
        // a rib runs roughly tangentially, a few mm beyond the pleura
        let t = perp(n, rng);
        let t = unit([t[0], t[1], t[2] * 0.3]);
        let r = rng.range(3.5, 6.0);
        let dpt = fat1 + r + rng.range(0.0, 3.0);
        let ctr = add(add(s, n, dpt), [0.0, 0.0, 1.0], rng.range(-12.0, 12.0));
        ribs.push(Capsule {
            a: add(ctr, t, -40.0),
            b: add(ctr, t, 40.0),
            ra: r,
            rb: r,
            hu: rng.range(350.0, 800.0),
        });
    }
    Wall {
        c,
        r: rc,
        fat: [fat0, fat1],
        muscle_hu: rng.range(25.0, 60.0),
        ribs,
    }
}

fn airway_near(
    rng: &mut Rng,
    out_vessels: &mut Vec<Capsule>,
    contrast: bool,
    wall_at_origin: bool,
) -> Airway {
    let dir = rng.unit3();
    let lumen = rng.range(1.0, 3.5);
    let wall = 0.4 + lumen * rng.range(0.15, 0.25);
    let side = perp(dir, rng);
    let axis_off = if wall_at_origin {
        lumen + 0.5 * wall
    } else {
        rng.range(5.0, 15.0)
    };
    let axis_pt = add([0.0; 3], side, -axis_off);
    // companion artery of about the same calibre
    let ra = lumen * rng.range(0.8, 1.2);
    let other = cross(dir, side);
    let apos = add(axis_pt, other, lumen + wall + ra + rng.range(0.5, 1.5));
    let hu = vessel_hu(rng, contrast);
    out_vessels.push(Capsule {
        a: add(apos, dir, -40.0),
        b: add(apos, dir, 40.0),
        ra,
        rb: ra,
        hu,
    });
    Airway {
        a: add(axis_pt, dir, -40.0),
        b: add(axis_pt, dir, 40.0),
        lumen,
        wall,
        hu: rng.range(0.0, 60.0),
    }
}

fn fissure_at(rng: &mut Rng, dist: f64) -> Fissure {
    let n = rng.unit3();
    Fissure {
        p: add([0.0; 3], n, dist),
        n,
        sigma: rng.range(0.15, 0.35),
        curv: rng.range(-0.01, 0.01),
        hu: rng.range(-100.0, 40.0),
    }
}

fn nodule_model(rng: &mut Rng, reading: &Reading) -> NoduleModel {
    let r = reading.ratings;
    let r_eq = (3.0 * reading.volume_mm3 / (4.0 * std::f64::consts::PI))
        .cbrt()
        .max(0.5);
    let margin = r.margin.clamp(1, 5) as usize;
    let margin_w = [1.2, 0.8, 0.5, 0.3, 0.15][margin - 1] * rng.range(0.8, 1.25);
    let rough = if margin <= 3 {
        (4 - margin) as f64 * 0.25 * rng.range(0.5, 1.5)
    } else {
        0.0
    };
    let solid_hu = if r.internal_structure == 2 {
        rng.range(0.0, 25.0)
    } else {
        rng.range(-10.0, 60.0)
    };
    let texture = r.texture.clamp(1, 5);
    let (ggo_hu, core) = match texture {
        1 => (Some(rng.range(-760.0, -620.0)), None),
        2 => (Some(rng.range(-680.0, -480.0)), None),
        3 => (
            Some(rng.range(-620.0, -420.0)),
            Some((rng.in_ball(0.3 * r_eq), rng.range(0.25, 0.5) * r_eq)),
        ),
        4 => (
            Some(rng.range(-560.0, -380.0)),
            Some((rng.in_ball(0.3 * r_eq), rng.range(0.45, 0.75) * r_eq)),
        ),
        _ => (None, None),
    };
    let hetero = if ggo_hu.is_some() {
        rng.range(25.0, 50.0)
    } else {
        rng.range(5.0, 15.0)
    };
    let calc_hu = rng.range(250.0, 900.0);
    let calc = match r.calcification {
        1 => Some(Calc {
            blobs: (0..3 + rng.below(5))
                .map(|_| (rng.in_ball(0.6 * r_eq), rng.range(0.12, 0.25) * r_eq))
                .collect(),
            whole: false,
            ring_period: 0.0,
            hu: calc_hu,
        }),
        2 => Some(Calc {
            blobs: vec![([0.0; 3], 0.15 * r_eq)],
            whole: false,
            ring_period: rng.range(0.25, 0.4),
            hu: calc_hu,
        }),
        3 => Some(Calc {
            blobs: vec![],
            whole: true,
            ring_period: 0.0,
            hu: calc_hu,
        }),
        4 => {
            let d = rng.unit3();
            let off = rng.range(0.35, 0.6) * r_eq;
            Some(Calc {
                blobs: vec![(
                    [d[0] * off, d[1] * off, d[2] * off],
                    rng.range(0.2, 0.4) * r_eq,
                )],
                whole: false,
                ring_period: 0.0,
                hu: calc_hu,
            })
        }
        5 => Some(Calc {
            blobs: vec![(rng.in_ball(0.1 * r_eq), rng.range(0.3, 0.55) * r_eq)],
            whole: false,
            ring_period: 0.0,
            hu: calc_hu,
        }),
        _ => None,
    };
    let inner = match r.internal_structure {
        3 => Some((
            rng.range(-120.0, -60.0),
            rng.in_ball(0.3 * r_eq),
            rng.range(0.3, 0.5) * r_eq,
        )),
        4 if r_eq > 3.0 => Some((
            -980.0,
            rng.in_ball(0.3 * r_eq),
            rng.range(0.15, 0.35) * r_eq,
        )),
        _ => None,
    };
    let mut m = NoduleModel {
        shape: reading.shape.clone(),
        angle: rng.range(0.0, 2.0 * std::f64::consts::PI),
        mirror: rng.chance(0.5),
        margin_w,
        rough,
        r_eq,
        solid_hu,
        ggo_hu,
        core,
        hetero,
        calc,
        inner,
        spicules: vec![],
        rough_field: ValueNoise::new(rng, 1.6, 24.0),
        het_field: ValueNoise::new(rng, 1.2, 24.0),
    };
    let s = r.spiculation.clamp(1, 5);
    let count = match s {
        1 => 0,
        2 => 2 + rng.below(3),
        3 => 4 + rng.below(5),
        4 => 7 + rng.below(6),
        _ => 10 + rng.below(7),
    };
    for _ in 0..count {
        let d = rng.unit3();
        let mut t = 0.0;
        while t < 40.0 && m.shape.sdf(m.to_shape([d[0] * t, d[1] * t, d[2] * t])) < 0.0 {
            t += 0.25;
        }
        let start = [d[0] * (t - 0.5), d[1] * (t - 0.5), d[2] * (t - 0.5)];
        let l = rng.range(0.5, 1.5) * (2.0 + 1.5 * s as f64);
        let dd = deflect(d, rng.range(0.0, 0.3), rng);
        m.spicules.push(Capsule {
            a: start,
            b: add(start, dd, l),
            ra: rng.range(0.4, 0.8),
            rb: 0.15,
            hu: solid_hu,
        });
    }
    m
}

/// Everything one sample needs to be rendered.
pub struct SampleSpec<'a> {
    /// Kind at the candidate position.
    pub kind: Kind,
    /// The reading to render (nodules).
    pub reading: Option<&'a Reading>,
    /// The scan that provides acquisition and contrast.
    pub scan: &'a Scan,
    /// Use lung1 as background at this position (mm, lung1 frame).
    pub lung1_at: Option<V3>,
    /// For [`Kind::Lung1Candidate`]: the candidate (1 mm grid) and its scale.
    pub lung1_candidate: Option<(V3, usize)>,
}

/// Render one sample: the normalised patch and how it was made.
pub fn render(
    spec: &SampleSpec,
    lung1: Option<&Lung1>,
    patch: &PatchSpec,
    rng: &mut Rng,
) -> Result<(Vec<f32>, RenderInfo), String> {
    let contrast = spec.scan.contrast;
    if spec.kind == Kind::Lung1Candidate {
        let l = lung1.ok_or("lung1 candidate without lung1")?;
        let (c, scale) = spec
            .lung1_candidate
            .ok_or("lung1 candidate without a position")?;
        let mut p = Vec::with_capacity(patch.patch_zyx.iter().product());
        extract_patch_scaled_into(
            &l.iso,
            c,
            patch.patch_zyx,
            scale,
            &patch.normalization,
            &mut p,
        );
        return Ok((
            p,
            RenderInfo {
                background: "lung1",
                juxtapleural: false,
                juxtavascular: false,
                jitter_mm: 0.0,
                acq: Acquisition::native(l.spacing()),
                contrast: false,
                scale,
            },
        ));
    }
    let mass_scale = if spec.kind == Kind::Mass {
        2 + rng.below(2)
    } else {
        1
    };
    let mut scene = Scene {
        parenchyma: match spec.lung1_at {
            Some(c) => Parenchyma::Real {
                centre: c,
                mirror: rng.chance(0.5),
            },
            None => synthetic_parenchyma(rng),
        },
        vessels: vec![],
        airways: vec![],
        fissure: None,
        nodule: None,
        wall: None,
    };
    let synthetic = spec.lung1_at.is_none();
    let mut juxtapleural = false;
    let mut juxtavascular = false;
    if synthetic {
        let n = 3 + rng.below(6);
        random_trees(rng, &mut scene.vessels, contrast, n);
    }
    let mut jitter = rng.in_ball(1.5);
    match spec.kind {
        Kind::Nodule | Kind::Mass => {
            let reading = spec.reading.ok_or("nodule sample without a reading")?;
            let m = nodule_model(rng, reading);
            let diam = reading.diameter_mm;
            jitter = rng.in_ball((0.25 * diam + 1.0).min(4.0));
            let p_wall = if spec.kind == Kind::Mass { 0.7 } else { 0.18 };
            if synthetic {
                if rng.chance(p_wall) {
                    juxtapleural = true;
                    let d = m.r_eq * rng.range(0.5, 1.1);
                    scene.wall = Some(wall_at(rng, d));
                } else if rng.chance(0.15) {
                    let d = rng.range(10.0, 20.0);
                    scene.wall = Some(wall_at(rng, d));
                }
                if rng.chance(0.3) {
                    juxtavascular = true;
                    let dir = rng.unit3();
                    let off = add([0.0; 3], perp(dir, rng), m.r_eq * rng.range(0.0, 1.2));
                    let hu = vessel_hu(rng, contrast);
                    let r = rng.range(0.6, 2.5);
                    vessel_through(rng, &mut scene.vessels, off, dir, r, hu);
                }
            }
            scene.nodule = Some(m);
        }
        Kind::Vessel | Kind::VesselZ => {
            let dir = if spec.kind == Kind::VesselZ {
                deflect([0.0, 0.0, 1.0], rng.range(0.0, 25f64.to_radians()), rng)
            } else {
                rng.unit3()
            };
            let r = rng.range(0.8, 3.5);
            let hu = vessel_hu(rng, contrast);
            let off = add([0.0; 3], perp(dir, rng), rng.range(0.0, 0.3) * r);
            vessel_through(rng, &mut scene.vessels, off, dir, r, hu);
            jitter = rng.in_ball(1.0);
        }
        Kind::Bifurcation => {
            let dir = rng.unit3();
            let r = rng.range(0.8, 3.5);
            let hu = vessel_hu(rng, contrast);
            let l = rng.range(14.0, 24.0);
            scene.vessels.push(Capsule {
                a: add([0.0; 3], dir, -l),
                b: [0.0; 3],
                ra: r,
                rb: r,
                hu,
            });
            grow_tree(
                rng,
                &mut scene.vessels,
                add([0.0; 3], dir, -l),
                [-dir[0], -dir[1], -dir[2]],
                r,
                hu,
                3,
                34.0,
            );
            let ax = perp(dir, rng);
            for (sgn, f) in [(1.0, rng.range(0.7, 0.9)), (-1.0, rng.range(0.5, 0.85))] {
                let a = rng.range(20f64, 60.0).to_radians();
                let d = unit(add(
                    [dir[0] * a.cos(), dir[1] * a.cos(), dir[2] * a.cos()],
                    ax,
                    sgn * a.sin(),
                ));
                let len_c = rng.range(12.0, 20.0);
                let end = add([0.0; 3], d, len_c);
                scene.vessels.push(Capsule {
                    a: [0.0; 3],
                    b: end,
                    ra: r * f,
                    rb: r * f * 0.95,
                    hu,
                });
                grow_tree(rng, &mut scene.vessels, end, d, r * f * 0.95, hu, 3, 34.0);
            }
            jitter = rng.in_ball(1.0);
        }
        Kind::Pleura => {
            let d = rng.range(-1.5, 2.5);
            scene.wall = Some(wall_at(rng, d));
            jitter = rng.in_ball(1.0);
        }
        Kind::Airway => {
            let a = airway_near(rng, &mut scene.vessels, contrast, true);
            scene.airways.push(a);
            jitter = rng.in_ball(0.8);
        }
        Kind::Fissure => {
            let d = rng.range(-0.5, 0.5);
            scene.fissure = Some(fissure_at(rng, d));
            jitter = rng.in_ball(1.0);
        }
        Kind::Lung | Kind::Lung1Maximum | Kind::Lung1Candidate => {}
    }
    // Incidental context structures.
    if synthetic {
        if scene.wall.is_none() && rng.chance(0.12) {
            let d = rng.range(10.0, 20.0);
            scene.wall = Some(wall_at(rng, d));
        }
        if scene.fissure.is_none() && rng.chance(0.12) {
            let d = rng.range(2.0, 15.0);
            scene.fissure = Some(fissure_at(rng, d));
        }
        if scene.airways.is_empty() && rng.chance(0.15) {
            let a = airway_near(rng, &mut scene.vessels, contrast, false);
            scene.airways.push(a);
        }
    }
    let extra_noise = if synthetic { 1.0 } else { 0.6 };
    let mut acq = Acquisition::draw(
        rng,
        spec.scan.pixel_spacing,
        spec.scan.slice_thickness,
        extra_noise,
    );
    if mass_scale > 1 {
        acq.rescale(mass_scale as f64);
    }
    let half =
        0.5 * patch.patch_zyx.iter().copied().max().unwrap_or(32) as f64 * patch.spacing_mm + 1.5;
    let vol = acquire(&scene, &acq, jitter, half, lung1, rng);
    let iso = to_isotropic(&vol, patch.spacing_mm, &NoProgress).map_err(|e| e.to_string())?;
    let c = iso.geometry.patient_to_voxel(jitter);
    let p = extract_patch(&iso, c, patch.patch_zyx, &patch.normalization);
    Ok((
        p,
        RenderInfo {
            background: if synthetic { "synthetic" } else { "lung1" },
            juxtapleural,
            juxtavascular,
            jitter_mm: len(jitter),
            acq,
            contrast,
            scale: mass_scale,
        },
    ))
}
