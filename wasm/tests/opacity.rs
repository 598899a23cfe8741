//! The opacity overlay of [`AnalysisResult`] (`opacitySlices`,
//! `opacityVoxels`, `opacitySlice`) against the core's [`OpacityMap`]: the
//! adapter hands the map through, no more. Native only: the analysis is the
//! DICOM writers' fixture on the real lung1 series (read from disk).
#![cfg(not(target_arch = "wasm32"))]

#[path = "../../core/tests/dicom_fixture/mod.rs"]
mod dicom_fixture;

use ct_triage_core::opacities::{CONSOLIDATION, GROUND_GLASS, OpacityMap, Run, SliceRuns};
use ct_triage_wasm::AnalysisResult;

/// lung1 with a hand-made opacity map: slice 3 ground glass and
/// consolidation on two rows, slice 10 one ground-glass run.
fn with_map() -> (AnalysisResult, [usize; 3]) {
    let mut a = dicom_fixture::analysis();
    let size = a.series.volume.geometry.size;
    let run = |row, col, len, label| Run {
        row,
        col,
        len,
        label,
    };
    a.opacity_map = Some(OpacityMap {
        size,
        slices: vec![
            SliceRuns {
                slice: 3,
                runs: vec![
                    run(100, 200, 5, GROUND_GLASS),
                    run(100, 205, 2, CONSOLIDATION),
                    run(101, 199, 4, GROUND_GLASS),
                ],
            },
            SliceRuns {
                slice: 10,
                runs: vec![run(50, 60, 7, GROUND_GLASS)],
            },
        ],
    });
    (AnalysisResult::new(a), size)
}

#[test]
fn the_overlay_is_the_core_map_slice_by_slice() {
    let (r, [nx, ny, _]) = with_map();
    assert_eq!(r.opacity_slices(), [3, 10]);
    assert_eq!(r.opacity_voxels(3).unwrap(), [9, 2]);
    assert_eq!(r.opacity_voxels(10).unwrap(), [7, 0]);
    assert_eq!(r.opacity_voxels(0).unwrap(), [0, 0]);
    let img = r.opacity_slice(3).unwrap().expect("slice 3 has opacity");
    assert_eq!(img.len(), nx * ny);
    assert_eq!(
        img,
        r.analysis().opacity_map.as_ref().unwrap().label_image(3)
    );
    assert_eq!(img[100 * nx + 204], GROUND_GLASS);
    assert_eq!(img[100 * nx + 205], CONSOLIDATION);
    assert_eq!(img[100 * nx + 207], 0);
    assert_eq!(img.iter().filter(|&&l| l != 0).count(), 11);
    // A slice without opacity ships nothing (not a slice of zeros).
    assert_eq!(r.opacity_slice(4).unwrap(), None);
}

#[test]
fn out_of_range_slices_are_invalid_arguments() {
    let (r, [_, _, nz]) = with_map();
    for e in [
        r.opacity_slice(nz).unwrap_err(),
        r.opacity_voxels(nz).unwrap_err(),
        r.opacity_slice(usize::MAX).unwrap_err(),
    ] {
        assert_eq!(e.code, "invalid_argument", "{e}");
    }
}

#[test]
fn no_opacity_stage_is_an_empty_overlay() {
    let mut a = dicom_fixture::analysis();
    a.opacity_map = None;
    a.opacity_key_image = None;
    let r = AnalysisResult::new(a);
    assert!(r.opacity_slices().is_empty());
    assert_eq!(r.opacity_slice(0).unwrap(), None);
    assert_eq!(r.opacity_voxels(0).unwrap(), [0, 0]);
}
