//! # ct-triage-analysis
//!
//! The analysis layer of ct-triage: an HU volume in, measured findings, a
//! Lung-RADS category and a worklist priority out. No DICOM: the volume comes
//! from `ct-triage-dicom`'s ingest as a [`series::LoadedSeries`], and the DICOM
//! writers there take this layer's [`report::Analysis`]. It compiles natively
//! and for `wasm32-unknown-unknown` and never panics on input; every failure
//! is an [`Error`].
//!
//! The stages, each a module with typed inputs and outputs (the pipeline that
//! chains them is `ct_triage_core::pipeline`):
//!
//! | stage | module | in → out |
//! |---|---|---|
//! | volume | [`volume`] | [`volume::Volume`]: HU voxels and geometry (voxel ↔ patient) |
//! | resample | [`resample`] | volume → isotropic volume at the model's spacing |
//! | lungs | [`lungs`] | volume → [`lungs::LungMasks`] (left/right region, coverage, `inconclusive`) |
//! | candidates | [`candidates`] | volume + lungs → [`candidates::Detection`] (three channels with budgets) |
//! | classify | [`classify`] | patches → [`classify::Prediction`] ([`classify::Classifier`]: burn, ONNX Runtime) |
//! | measure | [`measure`] | candidate → [`measure::Measurement`] (segmentation, axes, type, calcification, morphology) |
//! | findings | [`findings`] | classified, measured candidates → kept measurements and every candidate's fate ([`findings::AcceptRules`], [`findings::UnresolvedRules`]) |
//! | assess | [`assess`] | measurement → [`report::Finding`] (lobe, Brock [`risk`], Lung-RADS [`lungrads`]) |
//! | opacities | [`opacities`] | volume + lungs + focal findings → [`opacities::Opacities`] (ground glass, consolidation per lung / zone / lobe, CT severity score) |
//! | triage | [`triage`] | findings → exam category and priority ([`triage::TriageRules`]) |
//! | report | [`report`] | the [`report::Report`] schema, key images, limits |
//!
//! ```
//! use ct_triage_analysis::volume::{Geometry, Volume};
//! use ndarray::Array3;
//!
//! // A 4×4×2 volume of aerated lung (−850 HU), 1 mm voxels.
//! let v = Volume {
//!     hu: Array3::from_elem((2, 4, 4), -850i16),
//!     geometry: Geometry {
//!         size: [4, 4, 2],
//!         spacing: [1.0; 3],
//!         origin: [0.0; 3],
//!         direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
//!     },
//! };
//! let p = v.geometry.voxel_to_patient([1.0, 2.0, 1.0]);
//! assert_eq!(p, [1.0, 2.0, 1.0]);
//! ```
#![warn(missing_docs)]

pub mod anatomy;
pub mod assess;
pub mod calcification;
pub mod candidates;
pub mod classify;
pub mod error;
pub mod findings;
pub mod imgproc;
pub mod lungrads;
pub mod lungs;
pub mod measure;
pub mod morphology;
pub mod opacities;
pub mod progress;
pub mod quality;
pub mod report;
pub mod resample;
pub mod risk;
pub mod series;
pub mod triage;
pub mod volume;

pub use error::{Error, Result};
