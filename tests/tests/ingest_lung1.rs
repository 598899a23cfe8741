//! lung1 loads with the truth file's geometry, and shuffling or re-encoding the
//! files (RLE, JPEG lossless, JPEG-LS, JPEG 2000, implicit VR, deflate — made
//! with dcmtk and gdcm, independent encoders) gives the identical HU volume.

use ct_triage_core::ingest::{self, IngestOptions, LoadedSeries};
use ct_triage_core::progress::NoProgress;
use ct_triage_tests::{inputs, lung1_dir, lung1_truth, read_dir, run_tool};

fn load(files: &[(String, Vec<u8>)]) -> LoadedSeries {
    let (_, series) = ingest::load(&inputs(files), &IngestOptions::default(), &NoProgress)
        .unwrap_or_else(|e| panic!("load failed: {e}"));
    series
}

#[test]
fn lung1_geometry_matches_truth() {
    let s = load(&read_dir(&lung1_dir()));
    let t = lung1_truth();
    let g = &s.volume.geometry;
    let shape: Vec<usize> = t["shape_zyx"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!([g.size[2], g.size[1], g.size[0]].to_vec(), shape);
    for a in 0..3 {
        let sp = t["spacing_xyz_mm"][a].as_f64().unwrap();
        let or = t["origin_lps_mm"][a].as_f64().unwrap();
        assert!(
            (g.spacing[a] - sp).abs() < 1e-6,
            "spacing {a}: {} vs {sp}",
            g.spacing[a]
        );
        assert!(
            (g.origin[a] - or).abs() < 1e-6,
            "origin {a}: {} vs {or}",
            g.origin[a]
        );
    }
    // The lesion centroid maps to the truth's patient position.
    let c = &t["lesions"][0];
    let v: Vec<f64> = (0..3)
        .map(|a| c["centroid_voxel_xyz"][a].as_f64().unwrap())
        .collect();
    let p = g.voxel_to_patient([v[0], v[1], v[2]]);
    for a in 0..3 {
        let want = c["centroid_lps_mm"][a].as_f64().unwrap();
        assert!(
            (p[a] - want).abs() < 1e-6,
            "centroid {a}: {} vs {want}",
            p[a]
        );
    }
    assert_eq!(s.slices.len(), 48);
    let hu = s.volume.hu_stats();
    assert_eq!((hu.min, hu.max), (-1024, 3071));
    // The lesion is soft tissue inside aerated lung.
    let z = c["centroid_voxel_xyz"][2].as_f64().unwrap().round() as usize;
    let y = v[1].round() as usize;
    let x = v[0].round() as usize;
    let centre = s.volume.hu[[z, y, x]];
    assert!((-200..=200).contains(&centre), "lesion centre HU {centre}");
}

#[test]
fn shuffled_and_renamed_input_gives_identical_volume() {
    let files = read_dir(&lung1_dir());
    let reference = load(&files);
    // Reverse order, names that sort differently, and a rotation.
    let mut shuffled: Vec<(String, Vec<u8>)> = files
        .iter()
        .rev()
        .enumerate()
        .map(|(i, (_, b))| (format!("IMG{:04}", (i * 37) % 48), b.clone()))
        .collect();
    shuffled.rotate_left(17);
    let s = load(&shuffled);
    assert_eq!(s.volume, reference.volume);
    assert_eq!(s.slices, reference.slices);
}

/// Re-encode every slice with an external tool into a temp dir and load it.
fn reencoded(tool: &str, args: &[&str]) -> LoadedSeries {
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in read_dir(&lung1_dir()) {
        let out = dir
            .path()
            .join(std::path::Path::new(&name).file_name().unwrap());
        let mut a: Vec<&str> = args.to_vec();
        a.push(&name);
        let o = out.display().to_string();
        a.push(&o);
        run_tool(tool, &a);
    }
    load(&read_dir(dir.path()))
}

fn assert_same(label: &str, s: &LoadedSeries, reference: &LoadedSeries, ts: &str) {
    assert_eq!(
        s.transfer_syntaxes,
        vec![ts.to_string()],
        "{label}: transfer syntax"
    );
    assert_eq!(
        s.volume.geometry, reference.volume.geometry,
        "{label}: geometry"
    );
    let diff = s
        .volume
        .hu
        .iter()
        .zip(reference.volume.hu.iter())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(diff, 0, "{label}: {diff} voxels differ");
}

#[test]
fn reencoded_series_give_identical_volume() {
    let reference = load(&read_dir(&lung1_dir()));
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("RLE (dcmcrle)", "dcmcrle", &[], "1.2.840.10008.1.2.5"),
        (
            "JPEG lossless SV1 (dcmcjpeg)",
            "dcmcjpeg",
            &["+e1"],
            "1.2.840.10008.1.2.4.70",
        ),
        (
            "JPEG lossless P14 (dcmcjpeg)",
            "dcmcjpeg",
            &["+el"],
            "1.2.840.10008.1.2.4.57",
        ),
        (
            "JPEG-LS lossless (dcmcjpls)",
            "dcmcjpls",
            &[],
            "1.2.840.10008.1.2.4.80",
        ),
        (
            "JPEG 2000 lossless (gdcmconv)",
            "gdcmconv",
            &["--j2k"],
            "1.2.840.10008.1.2.4.90",
        ),
        (
            "implicit VR (dcmconv)",
            "dcmconv",
            &["+ti"],
            "1.2.840.10008.1.2",
        ),
        (
            "big endian (dcmconv)",
            "dcmconv",
            &["+tb"],
            "1.2.840.10008.1.2.2",
        ),
        (
            "deflate (dcmconv)",
            "dcmconv",
            &["+td"],
            "1.2.840.10008.1.2.1.99",
        ),
    ];
    let mut failures = Vec::new();
    for (label, tool, args, ts) in cases {
        let s = reencoded(tool, args);
        if let Err(e) = std::panic::catch_unwind(|| assert_same(label, &s, &reference, ts)) {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(msg);
        } else {
            println!("ok {label}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
