//! The scene: a continuous model of lung tissue around a candidate position
//! (HU as a function of position in mm), rasterised on a fine grid.
//!
//! Components, composited in this order: parenchyma (synthetic, or real
//! lung1 CT), vessel trees (tapered capsules), airways (wall + lumen), a
//! fissure, the nodule (a reader's contour shape with margin, texture,
//! calcification, internal structure and spicules) and the chest wall
//! (pleura, extrapleural fat, muscle, ribs).

use crate::lidc::Shape;
use crate::lung1::Lung1;
use crate::noise::ValueNoise;
use crate::rng::Rng;

/// 3-vector helpers.
pub type V3 = [f64; 3];

/// `a + s * b`.
pub fn add(a: V3, b: V3, s: f64) -> V3 {
    [a[0] + s * b[0], a[1] + s * b[1], a[2] + s * b[2]]
}
/// `a - b`.
pub fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
/// Dot product.
pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
/// Euclidean norm.
pub fn len(a: V3) -> f64 {
    dot(a, a).sqrt()
}
/// Unit vector (or +z for a null vector).
pub fn unit(a: V3) -> V3 {
    let l = len(a);
    if l < 1e-12 {
        [0.0, 0.0, 1.0]
    } else {
        [a[0] / l, a[1] / l, a[2] / l]
    }
}
/// Cross product.
pub fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// A unit vector perpendicular to `d`.
pub fn perp(d: V3, rng: &mut Rng) -> V3 {
    loop {
        let r = rng.unit3();
        let c = cross(d, r);
        if len(c) > 0.1 {
            return unit(c);
        }
    }
}

/// Rotate `d` by `angle` (rad) towards a random perpendicular direction.
pub fn deflect(d: V3, angle: f64, rng: &mut Rng) -> V3 {
    let p = perp(d, rng);
    unit(add(
        [d[0] * angle.cos(), d[1] * angle.cos(), d[2] * angle.cos()],
        p,
        angle.sin(),
    ))
}

/// A tapered capsule (vessel segment, spicule, rib, airway segment).
#[derive(Debug, Clone)]
pub struct Capsule {
    /// Start point (mm).
    pub a: V3,
    /// End point (mm).
    pub b: V3,
    /// Radius at `a` (mm).
    pub ra: f64,
    /// Radius at `b` (mm).
    pub rb: f64,
    /// HU of the tissue.
    pub hu: f64,
}

impl Capsule {
    /// Distance to the surface (negative inside), approximately, for a tapered capsule.
    pub fn sdf(&self, p: V3) -> f64 {
        let ab = sub(self.b, self.a);
        let l2 = dot(ab, ab).max(1e-12);
        let t = (dot(sub(p, self.a), ab) / l2).clamp(0.0, 1.0);
        let q = add(self.a, ab, t);
        len(sub(p, q)) - (self.ra + (self.rb - self.ra) * t)
    }

    fn aabb(&self, margin: f64) -> [V3; 2] {
        let r = self.ra.max(self.rb) + margin;
        [
            [
                self.a[0].min(self.b[0]) - r,
                self.a[1].min(self.b[1]) - r,
                self.a[2].min(self.b[2]) - r,
            ],
            [
                self.a[0].max(self.b[0]) + r,
                self.a[1].max(self.b[1]) + r,
                self.a[2].max(self.b[2]) + r,
            ],
        ]
    }
}

/// An airway: a wall tube around an air lumen.
#[derive(Debug, Clone)]
pub struct Airway {
    /// Axis start (mm).
    pub a: V3,
    /// Axis end (mm).
    pub b: V3,
    /// Lumen radius (mm).
    pub lumen: f64,
    /// Wall thickness (mm).
    pub wall: f64,
    /// Wall HU.
    pub hu: f64,
}

/// A fissure: a thin, slightly curved tissue sheet.
#[derive(Debug, Clone)]
pub struct Fissure {
    /// A point of the sheet.
    pub p: V3,
    /// Its normal.
    pub n: V3,
    /// Thickness (Gaussian σ, mm).
    pub sigma: f64,
    /// Curvature (1/mm).
    pub curv: f64,
    /// Tissue HU.
    pub hu: f64,
}

/// The chest wall: outside a large sphere (the lung is inside).
#[derive(Debug, Clone)]
pub struct Wall {
    /// Sphere centre (mm).
    pub c: V3,
    /// Sphere radius (mm).
    pub r: f64,
    /// Depth where extrapleural fat starts and ends (mm).
    pub fat: [f64; 2],
    /// Muscle HU.
    pub muscle_hu: f64,
    /// Ribs (capsules) inside the wall.
    pub ribs: Vec<Capsule>,
}

impl Wall {
    /// Distance beyond the pleural surface (positive in the wall).
    pub fn depth(&self, p: V3) -> f64 {
        len(sub(p, self.c)) - self.r
    }
}

/// How the nodule's calcification is drawn.
#[derive(Debug, Clone)]
pub struct Calc {
    /// Soft spheres `(centre, radius)` of calcium (mm); empty for whole-nodule or laminated.
    pub blobs: Vec<(V3, f64)>,
    /// Whole nodule calcified (pattern 3).
    pub whole: bool,
    /// Laminated rings: period as a fraction of the radius (pattern 2), 0 = none.
    pub ring_period: f64,
    /// Calcium HU.
    pub hu: f64,
}

/// The nodule as rendered.
#[derive(Debug, Clone)]
pub struct NoduleModel {
    /// The reader's shape (centroid frame).
    pub shape: Shape,
    /// Rotation about z (rad) and mirror in x.
    pub angle: f64,
    /// Mirror x.
    pub mirror: bool,
    /// Margin width (mm) of the logistic edge.
    pub margin_w: f64,
    /// Amplitude (mm) of the boundary irregularity.
    pub rough: f64,
    /// Equivalent radius (mm).
    pub r_eq: f64,
    /// Solid tissue HU.
    pub solid_hu: f64,
    /// Ground-glass HU (for non-solid and part-solid nodules).
    pub ggo_hu: Option<f64>,
    /// Solid core of a part-solid nodule: (centre, radius).
    pub core: Option<(V3, f64)>,
    /// Heterogeneity amplitude (HU).
    pub hetero: f64,
    /// Calcification.
    pub calc: Option<Calc>,
    /// Fat (HU, centre, radius) or air bubble inside.
    pub inner: Option<(f64, V3, f64)>,
    /// Spicules.
    pub spicules: Vec<Capsule>,
    /// Boundary irregularity field.
    pub rough_field: ValueNoise,
    /// Internal heterogeneity field.
    pub het_field: ValueNoise,
}

impl NoduleModel {
    /// Scene position → the reader shape's frame.
    pub fn to_shape(&self, p: V3) -> V3 {
        let (s, c) = self.angle.sin_cos();
        let x = c * p[0] + s * p[1];
        let y = -s * p[0] + c * p[1];
        [if self.mirror { -x } else { x }, y, p[2]]
    }

    /// Conservative bounding box (mm).
    pub fn aabb(&self) -> [V3; 2] {
        let b = self.shape.bbox();
        let rx = b[0][0].abs().max(b[1][0].abs());
        let ry = b[0][1].abs().max(b[1][1].abs());
        let r = (rx * rx + ry * ry).sqrt() + 4.0 * self.margin_w + self.rough + 1.0;
        let mut lo = [-r, -r, b[0][2] - 4.0 * self.margin_w - 1.0];
        let mut hi = [r, r, b[1][2] + 4.0 * self.margin_w + 1.0];
        for s in &self.spicules {
            let bb = s.aabb(0.6);
            for a in 0..3 {
                lo[a] = lo[a].min(bb[0][a]);
                hi[a] = hi[a].max(bb[1][a]);
            }
        }
        [lo, hi]
    }
}

/// Parenchyma: synthetic or a crop of real CT.
#[derive(Debug, Clone)]
pub enum Parenchyma {
    /// Synthetic lung: base HU, linear gradient (HU/mm), texture amplitude and fields.
    Synthetic {
        /// Mean lung HU.
        base: f64,
        /// Gravity-dependent gradient (HU per mm).
        grad: V3,
        /// Fine texture amplitude (HU).
        tex_amp: f64,
        /// Fine texture field (≈1.5 mm cells).
        tex: ValueNoise,
        /// Coarse field (≈6 mm cells) amplitude and field.
        coarse_amp: f64,
        /// See `coarse_amp`.
        coarse: ValueNoise,
    },
    /// Real CT (lung1) around `centre` (lung1 frame, mm), optionally mirrored in x.
    Real {
        /// Centre in lung1's frame (mm).
        centre: V3,
        /// Mirror x.
        mirror: bool,
    },
}

/// Everything in the field of view around the candidate.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Lung tissue.
    pub parenchyma: Parenchyma,
    /// Vessel segments.
    pub vessels: Vec<Capsule>,
    /// Airways.
    pub airways: Vec<Airway>,
    /// Fissure.
    pub fissure: Option<Fissure>,
    /// The nodule (at the origin).
    pub nodule: Option<NoduleModel>,
    /// Chest wall.
    pub wall: Option<Wall>,
}

#[inline]
fn ramp(sdf: f64, w: f64) -> f64 {
    (0.5 - sdf / w).clamp(0.0, 1.0)
}

#[inline]
fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A fine sampling grid: `nx × ny` in-plane at `x0 + i*dx`, `nz` planes at `z0 + k*dz`.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// Columns.
    pub nx: usize,
    /// Rows.
    pub ny: usize,
    /// Planes.
    pub nz: usize,
    /// Position of the first sample (mm).
    pub x0: V3,
    /// In-plane step (mm).
    pub dx: f64,
    /// Plane step (mm).
    pub dz: f64,
}

impl Grid {
    fn pos(&self, i: usize, j: usize, k: usize) -> V3 {
        [
            self.x0[0] + i as f64 * self.dx,
            self.x0[1] + j as f64 * self.dx,
            self.x0[2] + k as f64 * self.dz,
        ]
    }

    /// Index ranges covering an axis-aligned box.
    fn range(&self, bb: [V3; 2]) -> Option<[std::ops::Range<usize>; 3]> {
        let r = |lo: f64, hi: f64, o: f64, d: f64, n: usize| {
            let a = ((lo - o) / d).floor().max(0.0) as usize;
            let b = (((hi - o) / d).ceil() + 1.0).min(n as f64).max(0.0) as usize;
            a..b.max(a)
        };
        let x = r(bb[0][0], bb[1][0], self.x0[0], self.dx, self.nx);
        let y = r(bb[0][1], bb[1][1], self.x0[1], self.dx, self.ny);
        let z = r(bb[0][2], bb[1][2], self.x0[2], self.dz, self.nz);
        if x.is_empty() || y.is_empty() || z.is_empty() {
            None
        } else {
            Some([x, y, z])
        }
    }
}

impl Scene {
    /// Rasterise the scene (HU) on `g`, row-major `[z][y][x]`.
    pub fn rasterize(&self, g: &Grid, lung1: Option<&Lung1>) -> Vec<f32> {
        let mut hu = vec![0f32; g.nx * g.ny * g.nz];
        let idx = |i: usize, j: usize, k: usize| (k * g.ny + j) * g.nx + i;
        // 1. parenchyma
        match &self.parenchyma {
            Parenchyma::Synthetic {
                base,
                grad,
                tex_amp,
                tex,
                coarse_amp,
                coarse,
            } => {
                for k in 0..g.nz {
                    for j in 0..g.ny {
                        for i in 0..g.nx {
                            let p = g.pos(i, j, k);
                            hu[idx(i, j, k)] = (base + dot(*grad, p)) as f32;
                        }
                    }
                }
                for (f, a) in [(tex, *tex_amp), (coarse, *coarse_amp)] {
                    f.add_to_grid(&mut hu, g.nx, g.ny, g.nz, g.x0, g.dx, g.dz, a as f32);
                }
            }
            Parenchyma::Real { centre, mirror } => {
                let l = lung1.expect("real parenchyma needs lung1");
                for k in 0..g.nz {
                    for j in 0..g.ny {
                        for i in 0..g.nx {
                            let p = g.pos(i, j, k);
                            let x = if *mirror { -p[0] } else { p[0] };
                            hu[idx(i, j, k)] =
                                l.sample([centre[0] + x, centre[1] + p[1], centre[2] + p[2]])
                                    as f32;
                        }
                    }
                }
            }
        }
        // 2. vessels: brighter tissue over lung
        for c in &self.vessels {
            let Some([rx, ry, rz]) = g.range(c.aabb(0.5)) else {
                continue;
            };
            for k in rz.clone() {
                for j in ry.clone() {
                    for i in rx.clone() {
                        let occ = ramp(c.sdf(g.pos(i, j, k)), 0.35);
                        if occ > 0.0 {
                            let h = &mut hu[idx(i, j, k)];
                            let v = *h as f64 + occ * (c.hu - *h as f64);
                            *h = h.max(v as f32);
                        }
                    }
                }
            }
        }
        // 3. airways
        for a in &self.airways {
            let outer = Capsule {
                a: a.a,
                b: a.b,
                ra: a.lumen + a.wall,
                rb: a.lumen + a.wall,
                hu: a.hu,
            };
            let Some([rx, ry, rz]) = g.range(outer.aabb(0.5)) else {
                continue;
            };
            for k in rz.clone() {
                for j in ry.clone() {
                    for i in rx.clone() {
                        let p = g.pos(i, j, k);
                        let so = outer.sdf(p);
                        let ow = ramp(so, 0.35);
                        if ow <= 0.0 {
                            continue;
                        }
                        let ol = ramp(so + a.wall, 0.35);
                        let h = &mut hu[idx(i, j, k)];
                        let mut v = *h as f64 + ow * (a.hu - *h as f64);
                        v += ol * (-1000.0 - v);
                        *h = v as f32;
                    }
                }
            }
        }
        // 4. fissure
        if let Some(f) = &self.fissure {
            let t1 = perp(f.n, &mut Rng::new(7, 7));
            let t2 = cross(f.n, t1);
            for k in 0..g.nz {
                for j in 0..g.ny {
                    for i in 0..g.nx {
                        let p = sub(g.pos(i, j, k), f.p);
                        let u = dot(p, t1);
                        let w = dot(p, t2);
                        let d = dot(p, f.n) + f.curv * (u * u + w * w);
                        if d.abs() > 4.0 * f.sigma {
                            continue;
                        }
                        let occ = (-0.5 * (d / f.sigma).powi(2)).exp();
                        let h = &mut hu[idx(i, j, k)];
                        let v = *h as f64 + occ * (f.hu - *h as f64);
                        *h = h.max(v as f32);
                    }
                }
            }
        }
        // 5. nodule
        if let Some(n) = &self.nodule
            && let Some([rx, ry, rz]) = g.range(n.aabb())
        {
            let (rough, het) = (&n.rough_field, &n.het_field);
            for k in rz.clone() {
                for j in ry.clone() {
                    for i in rx.clone() {
                        let p = g.pos(i, j, k);
                        let mut sdf = n.shape.sdf(n.to_shape(p));
                        if n.rough > 0.0 {
                            sdf += n.rough * rough.at(p);
                        }
                        let mut occ = logistic(-sdf / n.margin_w);
                        let mut spic = 0.0f64;
                        for s in &n.spicules {
                            spic = spic.max(ramp(s.sdf(p), 0.35));
                        }
                        if occ < 1e-3 && spic <= 0.0 {
                            continue;
                        }
                        // target HU
                        let mut t = n.solid_hu + n.hetero * het.at(p);
                        if let Some(g_hu) = n.ggo_hu {
                            let core = n
                                .core
                                .map_or(0.0, |(c, r)| logistic((r - len(sub(p, c))) / 0.4));
                            t = g_hu + n.hetero * het.at(p) + core * (n.solid_hu - g_hu);
                        }
                        if let Some(c) = &n.calc {
                            let mut o: f64 = 0.0;
                            if c.whole {
                                o = logistic((-sdf - 0.5) / 0.3);
                            }
                            for (cc, r) in &c.blobs {
                                o = o.max(logistic((r - len(sub(p, *cc))) / 0.25));
                            }
                            if c.ring_period > 0.0 {
                                let r = len(p) / n.r_eq;
                                if r < 0.85 {
                                    let ph = (2.0 * std::f64::consts::PI * r / c.ring_period).cos();
                                    o = o.max(((0.5 + 0.5 * ph).powi(6)).min(1.0));
                                }
                            }
                            t += o * (c.hu - t);
                        }
                        if let Some((ih, c, r)) = n.inner {
                            let o = logistic((r - len(sub(p, c))) / 0.3);
                            t += o * (ih - t);
                        }
                        // spicules are solid strands
                        if spic > occ {
                            occ = spic;
                            t = n.solid_hu;
                        }
                        let h = &mut hu[idx(i, j, k)];
                        let cur = *h as f64;
                        let v = if t < -900.0 || t < cur && t > -300.0 {
                            // air bubble or fat inside: replace
                            cur + occ * (t - cur)
                        } else {
                            cur + occ * (t - cur).max(0.0)
                        };
                        *h = v as f32;
                    }
                }
            }
        }
        // 6. chest wall
        if let Some(w) = &self.wall {
            for k in 0..g.nz {
                for j in 0..g.ny {
                    for i in 0..g.nx {
                        let p = g.pos(i, j, k);
                        let d = w.depth(p);
                        if d < -1.0 {
                            continue;
                        }
                        let occ = ramp(-d, 0.4);
                        let mut t = if d > w.fat[0] && d < w.fat[1] {
                            -95.0
                        } else {
                            w.muscle_hu
                        };
                        for r in &w.ribs {
                            let s = r.sdf(p);
                            if s < 0.5 {
                                let o = ramp(s, 0.35);
                                // cortex brighter than marrow
                                let rib_hu = if s > -1.2 { r.hu } else { r.hu * 0.45 };
                                t += o * (rib_hu - t);
                            }
                        }
                        let h = &mut hu[idx(i, j, k)];
                        *h = (*h as f64 + occ * (t - *h as f64)) as f32;
                    }
                }
            }
        }
        hu
    }
}

/// Grow a vessel tree from `p` along `dir` with radius `r`, appending capsules.
#[allow(clippy::too_many_arguments)]
pub fn grow_tree(
    rng: &mut Rng,
    out: &mut Vec<Capsule>,
    p: V3,
    dir: V3,
    r: f64,
    hu: f64,
    depth: usize,
    bound: f64,
) {
    if r < 0.3 || depth > 7 || len(p) > bound || out.len() > 400 {
        return;
    }
    let l = rng.range(4.0, 11.0) * (0.7 + 0.3 * r);
    let b = add(p, dir, l);
    let r1 = r * rng.range(0.9, 0.99);
    out.push(Capsule {
        a: p,
        b,
        ra: r,
        rb: r1,
        hu,
    });
    if rng.chance(0.55) {
        let a1 = rng.range(15f64, 45.0).to_radians();
        let a2 = rng.range(25f64, 70.0).to_radians();
        let ax = perp(dir, rng);
        let d1 = unit(add(
            [dir[0] * a1.cos(), dir[1] * a1.cos(), dir[2] * a1.cos()],
            ax,
            a1.sin(),
        ));
        let d2 = unit(add(
            [dir[0] * a2.cos(), dir[1] * a2.cos(), dir[2] * a2.cos()],
            ax,
            -a2.sin(),
        ));
        let (f1, f2) = (rng.range(0.75, 0.92), rng.range(0.5, 0.8));
        grow_tree(rng, out, b, d1, r1 * f1, hu, depth + 1, bound);
        grow_tree(rng, out, b, d2, r1 * f2, hu, depth + 1, bound);
    } else {
        let d = deflect(dir, rng.range(0.0, 15f64.to_radians()), rng);
        grow_tree(rng, out, b, d, r1, hu, depth + 1, bound);
    }
}
