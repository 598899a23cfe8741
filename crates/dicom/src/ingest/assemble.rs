//! Ordering the slices of a series along the slice normal, checking the stack
//! (duplicates, gaps, uneven spacing, gantry tilt) and decoding it into a
//! uniform HU volume.

use std::collections::HashMap;

use ndarray::Array3;
use rayon::prelude::*;

use super::instance::{FrameInfo, Instance};
use super::pixels::{HuMapping, apply_table, frame_bytes};
use super::series::FrameId;
use super::{IngestOptions, Severity, SliceRef, Warning};
use crate::error::{Error, Result};
use ct_triage_analysis::progress::Progress;
use ct_triage_analysis::volume::{Geometry, Vec3, Volume, cross, dot, norm};

/// One frame in stack order with its position along the stack.
struct Placed<'a> {
    id: FrameId,
    info: &'a FrameInfo,
    s: f64,
}

/// The result of assembling: volume, per-slice references and warnings.
pub(crate) struct Assembled {
    pub volume: Volume,
    pub slices: Vec<SliceRef>,
    pub warnings: Vec<Warning>,
}

/// Order, check and decode the frames of one series.
pub(crate) fn assemble(
    instances: &[Instance],
    frames: &[FrameId],
    series: &str,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<Assembled> {
    let geo_err = |message: String| Error::Geometry {
        series: series.to_string(),
        message,
    };
    let mut warnings = Vec::new();
    let first = &instances[frames[0].0].frames[frames[0].1];
    let [row, col] = first.orientation;
    let normal = cross(row, col);

    // 1. order by the projection of ImagePositionPatient on the normal.
    let mut placed: Vec<Placed> = frames
        .iter()
        .map(|&(i, f)| {
            let info = &instances[i].frames[f];
            Placed {
                id: (i, f),
                info,
                s: dot(info.position, normal),
            }
        })
        .collect();
    placed.sort_by(|a, b| {
        a.s.total_cmp(&b.s)
            .then_with(|| {
                instances[a.id.0]
                    .sop_instance_uid
                    .cmp(&instances[b.id.0].sop_instance_uid)
            })
            .then(a.id.1.cmp(&b.id.1))
    });

    // 2. duplicates: same position. Identical SOP instance (the same file twice) is
    // dropped with a warning; different content at one position is refused.
    let mut dedup: Vec<Placed> = Vec::with_capacity(placed.len());
    let mut dropped = 0usize;
    for p in placed {
        if let Some(last) = dedup.last()
            && (p.s - last.s).abs() < 0.01
        {
            let a = &instances[last.id.0];
            let b = &instances[p.id.0];
            if a.sop_instance_uid == b.sop_instance_uid && last.id.1 == p.id.1 {
                dropped += 1;
                continue;
            }
            return Err(geo_err(format!(
                "two different slices at the same position {:.2} mm ({} and {}): \
                 the series mixes acquisitions or reconstructions",
                p.s, a.file, b.file
            )));
        }
        dedup.push(p);
    }
    if dropped > 0 {
        warnings.push(Warning::new(
            "duplicate_slices",
            Severity::Warning,
            format!("{dropped} duplicate instance(s) ignored"),
        ));
    }
    let placed = dedup;
    let n = placed.len();
    if n < opts.min_slices.max(2) {
        return Err(geo_err(format!(
            "{n} distinct slice(s); at least {} are needed",
            opts.min_slices.max(2)
        )));
    }

    // 3. stack direction and gantry tilt.
    let p0 = placed[0].info.position;
    let pn = placed[n - 1].info.position;
    let span = [pn[0] - p0[0], pn[1] - p0[1], pn[2] - p0[2]];
    let span_len = norm(span);
    if span_len < 1e-3 {
        return Err(geo_err("all slices lie at one position".into()));
    }
    let stack = span.map(|x| x / span_len);
    let tilt_deg = dot(stack, normal).clamp(-1.0, 1.0).acos().to_degrees();
    if tilt_deg > opts.max_tilt_deg {
        return Err(geo_err(format!(
            "slices are stacked {tilt_deg:.1}° away from the slice normal (limit {}°)",
            opts.max_tilt_deg
        )));
    }
    let tilted = tilt_deg > 0.1;
    if tilted {
        warnings.push(Warning::new(
            "gantry_tilt",
            Severity::Warning,
            format!(
                "gantry tilt of {tilt_deg:.1}°: the volume is a sheared grid; measurements use the true geometry"
            ),
        ));
    }
    // Distance along the stack direction from the first slice.
    let along = |p: Vec3| dot([p[0] - p0[0], p[1] - p0[1], p[2] - p0[2]], stack);
    let pos: Vec<f64> = placed.iter().map(|p| along(p.info.position)).collect();
    // Slices should lie on one line.
    let off_line = placed
        .iter()
        .zip(&pos)
        .map(|(p, &t)| {
            let q = p.info.position;
            norm([
                q[0] - p0[0] - t * stack[0],
                q[1] - p0[1] - t * stack[1],
                q[2] - p0[2] - t * stack[2],
            ])
        })
        .fold(0.0, f64::max);
    if off_line > 1.0 {
        warnings.push(Warning::new(
            "slices_not_collinear",
            Severity::Warning,
            format!("slice origins deviate up to {off_line:.1} mm from one line"),
        ));
    }

    // 4. spacing: uniform, uneven, missing slices.
    let mut gaps: Vec<f64> = pos.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let dz = sorted[sorted.len() / 2];
    if dz < 0.05 {
        return Err(geo_err(format!(
            "median slice spacing {dz:.3} mm is implausible"
        )));
    }
    let max_gap = sorted[sorted.len() - 1];
    let min_gap = sorted[0];
    let uniform = (max_gap - dz).abs() <= 0.01 * dz && (dz - min_gap).abs() <= 0.01 * dz;
    if !uniform {
        if max_gap > opts.max_gap_mm.max(opts.max_gap_slices * dz) {
            let at = gaps.iter().position(|&g| g == max_gap).unwrap_or_default();
            return Err(geo_err(format!(
                "gap of {max_gap:.1} mm between slices at {:.1} and {:.1} mm (≈{} slices missing); \
                 the series does not cover the lungs continuously",
                pos[at],
                pos[at + 1],
                (max_gap / dz).round() as i64 - 1
            )));
        }
        let missing: i64 = gaps
            .iter()
            .map(|&g| ((g / dz).round() as i64 - 1).max(0))
            .sum();
        let msg = if missing > 0 {
            format!(
                "{missing} missing slice(s) (spacing {dz:.2} mm, largest gap {max_gap:.2} mm); \
                 filled by linear interpolation"
            )
        } else {
            format!("uneven slice spacing ({min_gap:.2}–{max_gap:.2} mm); resampled to {dz:.2} mm")
        };
        warnings.push(Warning::new("uneven_spacing", Severity::Warning, msg));
    }
    gaps.clear();

    // 5. target grid along the stack.
    let nz = if uniform {
        n
    } else {
        (pos[n - 1] / dz).round() as usize + 1
    };
    let f0 = placed[0].info;
    let (rows, cols) = {
        let l = &instances[placed[0].id.0].layout;
        (l.rows as usize, l.columns as usize)
    };
    let voxels = (nz as u64) * rows as u64 * cols as u64;
    if voxels > opts.limits.max_volume_voxels {
        return Err(Error::LimitExceeded {
            file: series.to_string(),
            what: "volume voxels".into(),
            value: voxels,
            limit: opts.limits.max_volume_voxels,
        });
    }
    let z_spacing = if uniform {
        pos[n - 1] / (n - 1) as f64
    } else {
        dz
    };
    let geometry = Geometry {
        size: [cols, rows, nz],
        // PixelSpacing is [between rows (y), between columns (x)].
        spacing: [f0.pixel_spacing[1], f0.pixel_spacing[0], z_spacing],
        origin: p0,
        direction: [row, col, if tilted { stack } else { normal }],
    };

    // 6. decode. One HU table per distinct modality LUT.
    let mut tables: HashMap<_, Vec<i16>> = HashMap::new();
    let mappings: Vec<HuMapping> = placed
        .iter()
        .map(|p| {
            let inst = &instances[p.id.0];
            HuMapping {
                bits_allocated: inst.layout.bits_allocated,
                bits_stored: inst.layout.bits_stored,
                signed: inst.layout.signed,
                slope: p.info.slope,
                intercept: p.info.intercept,
                padding: inst.padding,
            }
        })
        .collect();
    let distinct_rescale = {
        let mut r: Vec<_> = mappings
            .iter()
            .map(|m| (m.slope.to_bits(), m.intercept.to_bits()))
            .collect();
        r.sort();
        r.dedup();
        r.len()
    };
    if distinct_rescale > 1 {
        warnings.push(Warning::new(
            "per_slice_rescale",
            Severity::Info,
            format!("{distinct_rescale} different rescale slope/intercept pairs applied per slice"),
        ));
    }
    for m in &mappings {
        tables.entry(m.key()).or_insert_with(|| m.table());
    }
    let plane = rows * cols;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let decode_into = |k: usize, out: &mut [i16]| -> Result<()> {
        if progress.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let p = &placed[k];
        let inst = &instances[p.id.0];
        let raw = frame_bytes(inst, p.info.frame)?;
        let m = &mappings[k];
        apply_table(&raw, m.bits_allocated, &tables[&m.key()], out);
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress.progress(
            ct_triage_analysis::progress::Stage::Ingest,
            d as f64 / n as f64,
        );
        Ok(())
    };
    let hu = if uniform {
        let mut data = Vec::new();
        data.try_reserve_exact(nz * plane).map_err(|_| {
            geo_err(format!(
                "cannot allocate {} MB for the volume",
                (nz * plane * 2) >> 20
            ))
        })?;
        data.resize(nz * plane, 0i16);
        data.par_chunks_mut(plane)
            .enumerate()
            .try_for_each(|(k, out)| decode_into(k, out))?;
        Array3::from_shape_vec((nz, rows, cols), data).map_err(|e| geo_err(e.to_string()))?
    } else {
        let mut slices = vec![Vec::<i16>::new(); n];
        slices.par_iter_mut().enumerate().try_for_each(|(k, out)| {
            out.resize(plane, 0);
            decode_into(k, out)
        })?;
        let mut data = vec![0i16; nz * plane];
        data.par_chunks_mut(plane).enumerate().for_each(|(k, out)| {
            let z = k as f64 * dz;
            let hi = pos.partition_point(|&p| p < z - 1e-6).min(n - 1);
            let lo = hi.saturating_sub(1);
            if hi == lo || (pos[hi] - z).abs() < 1e-6 {
                out.copy_from_slice(&slices[hi]);
            } else {
                let w = ((z - pos[lo]) / (pos[hi] - pos[lo])).clamp(0.0, 1.0) as f32;
                for ((o, &a), &b) in out.iter_mut().zip(&slices[lo]).zip(&slices[hi]) {
                    *o = (a as f32 * (1.0 - w) + b as f32 * w).round() as i16;
                }
            }
        });
        Array3::from_shape_vec((nz, rows, cols), data).map_err(|e| geo_err(e.to_string()))?
    };

    // 7. references: nearest source slice for every volume slice.
    let slices = (0..nz)
        .map(|k| {
            let z = k as f64 * z_spacing;
            let i = nearest(&pos, z);
            let inst = &instances[placed[i].id.0];
            SliceRef {
                sop_class_uid: inst.sop_class_uid.clone(),
                sop_instance_uid: inst.sop_instance_uid.clone(),
                frame_number: (inst.layout.frames > 1).then_some(placed[i].info.frame + 1),
                instance_number: inst.instance_number,
            }
        })
        .collect();

    Ok(Assembled {
        volume: Volume { hu, geometry },
        slices,
        warnings,
    })
}

fn nearest(pos: &[f64], z: f64) -> usize {
    let hi = pos.partition_point(|&p| p < z).min(pos.len() - 1);
    if hi > 0 && (z - pos[hi - 1]).abs() <= (pos[hi] - z).abs() {
        hi - 1
    } else {
        hi
    }
}
