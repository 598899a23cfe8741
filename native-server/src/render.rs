//! Human-readable terminal output of core results.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use ct_triage_core::ingest::InspectReport;
use ct_triage_core::report::Report;

/// Shorten a UID for a table cell: keep its tail, which is what differs.
fn short_uid(uid: &str) -> String {
    if uid.chars().count() <= 28 {
        uid.to_string()
    } else {
        let tail: String = uid
            .chars()
            .rev()
            .take(24)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// Render an inspect report as tables.
pub fn inspect_text(r: &InspectReport) -> String {
    let mut out = String::new();
    for study in &r.studies {
        out.push_str(&format!(
            "Study {}  date {}  patient {}  {}\n",
            study.study_instance_uid,
            study.study_date.as_deref().unwrap_or("-"),
            study.patient_id.as_deref().unwrap_or("-"),
            study.description.as_deref().unwrap_or("")
        ));
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec![
                "", "series", "mod", "files", "slices", "matrix", "pixel mm", "thick mm", "plane",
                "reason",
            ]);
        for s in &study.series {
            t.add_row(vec![
                if s.selected {
                    "▶".to_string()
                } else {
                    String::new()
                },
                short_uid(&s.key),
                s.modality.clone(),
                s.instances.to_string(),
                s.frames.to_string(),
                format!("{}×{}", s.columns, s.rows),
                format!("{:.3}", s.pixel_spacing_mm[1]),
                s.slice_thickness_mm
                    .map(|t| format!("{t:.2}"))
                    .unwrap_or_else(|| "-".into()),
                s.orientation.clone(),
                s.reason.clone(),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if let Some(v) = &r.volume {
        out.push_str(&format!(
            "\nVolume {}\n  size (x,y,z)   {} × {} × {} voxels\n  spacing        {:.4} × {:.4} × {:.4} mm\n  origin (LPS)   {:.2}, {:.2}, {:.2} mm\n  direction      [{}]\n  syntaxes       {}\n  HU             min {}  max {}  mean {:.1}\n",
            v.series_instance_uid,
            v.size_xyz[0], v.size_xyz[1], v.size_xyz[2],
            v.spacing_mm[0], v.spacing_mm[1], v.spacing_mm[2],
            v.origin_lps_mm[0], v.origin_lps_mm[1], v.origin_lps_mm[2],
            v.direction.iter().map(|d| format!("{d:.3}")).collect::<Vec<_>>().join(", "),
            v.transfer_syntaxes.join(", "),
            v.hu.min, v.hu.max, v.hu.mean,
        ));
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("\nNo volume: {} ({})\n", e.message, e.code));
    }
    if !r.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &r.warnings {
            out.push_str(&format!("  [{:?}] {}: {}\n", w.severity, w.code, w.message));
        }
    }
    if !r.skipped.is_empty() {
        out.push_str(&format!("\nSkipped {} file(s):\n", r.skipped.len()));
        for s in r.skipped.iter().take(20) {
            out.push_str(&format!("  {}: {}\n", s.path, s.reason));
        }
        if r.skipped.len() > 20 {
            out.push_str(&format!(
                "  … and {} more (see --json)\n",
                r.skipped.len() - 20
            ));
        }
    }
    out
}

/// Where a finding is, for a table cell: side and (approximated) lobe.
fn where_cell(f: &ct_triage_core::report::Finding) -> String {
    use ct_triage_core::report::{Lobe, Side};
    let side = match f.location.side {
        Side::Right => "right",
        Side::Left => "left",
    };
    let lobe = match f.location.lobe {
        Lobe::RightUpper | Lobe::LeftUpper => "upper lobe*",
        Lobe::RightMiddle => "middle lobe*",
        Lobe::RightLower | Lobe::LeftLower => "lower lobe*",
        Lobe::Unknown => "lobe ?",
    };
    let pleura = if f.location.juxtapleural {
        ", pleural"
    } else {
        ""
    };
    format!("{side}, {lobe}{pleura}")
}

/// Series / image number of a finding, as PACS shows it.
fn image_cell(f: &ct_triage_core::report::Finding) -> String {
    let n = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    format!("{}/{}", n(f.series_number), n(f.image_number))
}

/// Render an analysis report as a readable summary: triage and exam
/// category with their reasons and management, the findings table (with
/// series/image number), per-finding management, warnings, every stated
/// limit and the disclaimer.
pub fn report_text(r: &Report) -> String {
    let e = &r.exam;
    let rads = e.lung_rads.map_or("0", |c| c.as_str());
    let mut out = format!(
        "Series {}  ({} slices, {} files)\n\nTriage: {}  score {:.3}  Lung-RADS {}\n",
        r.input.series_instance_uid,
        r.input.size_xyz[2],
        r.input.files,
        e.triage_priority.as_str().to_uppercase(),
        e.triage_score,
        rads,
    );
    if let Some(reason) = &e.inconclusive_reason {
        out.push_str(&format!("Inconclusive: {reason}\n"));
    }
    for why in &e.triage_reasons {
        out.push_str(&format!("  · {why}\n"));
    }
    out.push_str(&format!("  Rule set: {}\n", e.triage_rule_set));
    out.push_str(&format!("Lung-RADS {rads}: {}\n", e.lung_rads_reason));
    if !e.management.is_empty() {
        out.push_str(&format!("  Management: {}\n", e.management));
    }
    if r.findings.is_empty() {
        out.push_str("\nNo findings.\n");
    } else {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec![
                "#",
                "type",
                "diam mm",
                "long×short",
                "vol mm³",
                "where",
                "se/img",
                "Lung-RADS",
                "Brock",
                "AI malig",
                "nodule p",
            ]);
        for f in &r.findings {
            let mut ty = f.nodule_type.as_str().replace('_', "-");
            if let Some(c) = &f.calcification
                && c.pattern != ct_triage_core::report::CalcificationPattern::Absent
            {
                ty = format!("{ty} ({} calc.)", c.pattern.as_str());
            }
            t.add_row(vec![
                f.id.to_string(),
                ty,
                format!("{:.1}", f.diameter_mm),
                format!("{:.1}×{:.1}", f.long_axis_mm, f.short_axis_mm),
                format!("{:.0}", f.volume_mm3),
                where_cell(f),
                image_cell(f),
                f.lung_rads.as_str().to_string(),
                format!("{:.3}", f.brock_probability),
                format!("{:.2}", f.malignancy_probability),
                format!("{:.2}", f.nodule_probability),
            ]);
        }
        out.push('\n');
        out.push_str(&t.to_string());
        out.push('\n');
        for f in &r.findings {
            out.push_str(&format!(
                "  #{} Lung-RADS {} ({}): {}\n",
                f.id,
                f.lung_rads.as_str(),
                f.lung_rads_reason,
                f.lung_rads_management
            ));
        }
        out.push_str(
            "  se/img = series / image number (InstanceNumber) of the slice measured on. \
             * lobe approximated from landmarks.\n",
        );
        for f in &r.findings {
            if let Some(b) = &f.brock
                && let Some(alt) = b.probability_if_upper_lobe
            {
                out.push_str(&format!(
                    "  #{} Brock {:.3} with the long axis {:.1} mm, lobe unknown → not upper lobe \
                     (if upper lobe: {alt:.3})\n",
                    f.id, f.brock_probability, b.diameter_mm
                ));
            }
        }
    }
    out.push_str(&opacities_text(r));
    if !r.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &r.warnings {
            out.push_str(&format!("  [{:?}] {}: {}\n", w.severity, w.code, w.message));
        }
    }
    if !r.limits.is_empty() {
        out.push_str("\nLimits:\n");
        for l in &r.limits {
            out.push_str(&format!("  - {l}\n"));
        }
    }
    out.push_str(&format!("\n{}\n", r.disclaimer));
    out.push_str(&format!(
        "\nModel {} {} ({}); analysis {:.1} s\n",
        r.model.name,
        r.model.version,
        r.model.runtime,
        r.timings_ms.get("total").copied().unwrap_or(0.0) / 1000.0
    ));
    out
}

/// The diffuse-opacity lines of the summary (empty when the report has no section):
/// per lung ground glass, consolidation and percent, the CT severity score with
/// its lobe scores, the distribution and the emphysema index beside it.
pub fn opacities_text(r: &Report) -> String {
    let Some(o) = &r.opacities else {
        return String::new();
    };
    let lung = |name: &str, l: &ct_triage_core::report::LungOpacity| {
        format!(
            "  {name:<5} ground glass {:>6.1} mL  consolidation {:>6.1} mL  {:>5.1} % of {:.0} mL\n",
            l.ground_glass_ml, l.consolidation_ml, l.percent_of_lung, l.lung_ml
        )
    };
    let lobes: Vec<String> = o
        .lobes
        .iter()
        .map(|l| {
            let n = match l.lobe {
                ct_triage_core::report::Lobe::RightUpper => "RUL",
                ct_triage_core::report::Lobe::RightMiddle => "RML",
                ct_triage_core::report::Lobe::RightLower => "RLL",
                ct_triage_core::report::Lobe::LeftUpper => "LUL",
                ct_triage_core::report::Lobe::LeftLower => "LLL",
                ct_triage_core::report::Lobe::Unknown => "?",
            };
            format!("{n} {}", l.score)
        })
        .collect();
    let d = &o.distribution;
    let zone = d
        .predominant_zone
        .map_or("none".to_string(), |z| format!("{z:?}").to_lowercase());
    let slice = o.most_affected_slice.as_ref().map_or(String::new(), |s| {
        format!(
            "; most affected image {}",
            s.image_number
                .map_or(format!("slice {}", s.slice_index), |n| n.to_string())
        )
    });
    format!(
        "\nOpacities (pattern, not a diagnosis):\n{}{}  CT severity score {}/25 ({}; lobes approximated*)\n  \
         distribution: {}, {}, predominant zone {zone}{slice}; emphysema %LAA-950 {:.1} %\n",
        lung("right", &o.right),
        lung("left", &o.left),
        o.ct_severity_score,
        lobes.join(", "),
        d.laterality.replace('_', " "),
        d.axial,
        o.emphysema_laa950_percent,
    )
}

/// The candidate list of a report made with `explain` (`analyze --explain`):
/// one row per candidate with its channel, position, scale, classifier
/// outputs and what became of it, so that a miss can be traced to the stage
/// that lost it. Empty when the report has no list.
pub fn candidates_text(r: &Report) -> String {
    let Some(items) = &r.candidates.items else {
        return String::new();
    };
    let mut out = String::from("\nCandidates (channel: found / kept / budget):");
    for c in &r.candidates.channels {
        out.push_str(&format!(
            "  {} {}/{}/{}",
            c.channel.as_str(),
            c.found,
            c.kept,
            c.budget
        ));
    }
    out.push('\n');
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "channel", "LPS mm", "slice", "r mm", "strength", "scale", "nodule p", "decision",
        ]);
    for c in items {
        let p = c
            .outputs
            .get("nodule")
            .map_or("-".to_string(), |v| format!("{v:.2}"));
        t.add_row(vec![
            c.channel.as_str().to_string(),
            format!(
                "{:.0},{:.0},{:.0}",
                c.center_lps_mm[0], c.center_lps_mm[1], c.center_lps_mm[2]
            ),
            c.slice_index.to_string(),
            format!("{:.1}", c.radius_mm),
            format!("{:.0}", c.response),
            c.patch_scale.to_string(),
            p,
            c.reason.clone(),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    out
}
