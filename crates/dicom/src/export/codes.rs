//! Every coded concept the DICOM objects use, with where it comes from.
//!
//! Coding schemes (PS3.16 Table 8-1): `DCM` (DICOM, PS3.16 Annex D), `SCT`
//! (SNOMED CT), `LN` (LOINC), `UCUM` (units), `UMLS`, `RFC5646` (language
//! tags). The context groups (CID) named per code are the PS3.16 value sets
//! the concept is taken from; each standard code was checked against the
//! DICOM code dictionaries shipped with pydicom 3 (`pydicom.sr.codedict`),
//! which the interop tests use to re-check them.
//!
//! Private codes use the scheme [`PRIVATE_SCHEME`] (`99CTT`), declared in the
//! CodingSchemeIdentificationSequence of every object that uses one. They are
//! used only where no standard code exists: the Lung-RADS category values,
//! reasons and management text, the solid / part-solid attenuation types, the
//! calcification patterns, the Brock model as measurement method, the AI
//! malignancy score (its own concept, never the standard "Probability of
//! cancer", which the Brock probability carries), the solid component
//! diameter, the source image location, the stated limits and warnings, the
//! worklist triage values, and the diffuse-opacity quantities (percent of
//! lung, the Pan 2020 CT severity score, %LAA-950, the distribution text).

/// A coded concept: code value, coding scheme designator, code meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    /// Code Value (0008,0100).
    pub value: &'static str,
    /// Coding Scheme Designator (0008,0102).
    pub scheme: &'static str,
    /// Code Meaning (0008,0104).
    pub meaning: &'static str,
}

const fn c(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme,
        meaning,
    }
}

/// Designator of the private coding scheme of this project.
pub const PRIVATE_SCHEME: &str = "99CTT";
/// Name of the private coding scheme (CodingSchemeName).
pub const PRIVATE_SCHEME_NAME: &str = "ct-triage local codes";
/// Version of the private coding scheme.
pub const PRIVATE_SCHEME_VERSION: &str = "1";

// ---- document structure (TID 1500, 1204, 1001/1004, 1600) ----

/// (126000, DCM) document title, CID 7021 Measurement Report Document Titles.
pub const IMAGING_MEASUREMENT_REPORT: Code = c("126000", "DCM", "Imaging Measurement Report");
/// (121049, DCM) TID 1204 concept name.
pub const LANGUAGE_OF_CONTENT: Code =
    c("121049", "DCM", "Language of Content Item and Descendants");
/// (en-US, RFC5646), the TID 1204 value highdicom also writes.
pub const ENGLISH_US: Code = c("en-US", "RFC5646", "English (United States)");
/// (121005, DCM) TID 1002 Observer Type.
pub const OBSERVER_TYPE: Code = c("121005", "DCM", "Observer Type");
/// (121007, DCM) CID 270 Observer Type value.
pub const DEVICE: Code = c("121007", "DCM", "Device");
/// (121012, DCM) TID 1004.
pub const DEVICE_OBSERVER_UID: Code = c("121012", "DCM", "Device Observer UID");
/// (121013, DCM) TID 1004.
pub const DEVICE_OBSERVER_NAME: Code = c("121013", "DCM", "Device Observer Name");
/// (121014, DCM) TID 1004.
pub const DEVICE_OBSERVER_MANUFACTURER: Code = c("121014", "DCM", "Device Observer Manufacturer");
/// (121015, DCM) TID 1004.
pub const DEVICE_OBSERVER_MODEL_NAME: Code = c("121015", "DCM", "Device Observer Model Name");
/// (121058, DCM) TID 1500 row "Procedure reported".
pub const PROCEDURE_REPORTED: Code = c("121058", "DCM", "Procedure reported");
/// (24627-2, LN) LOINC "CT Chest" (listed in PS3.16 CID 7000).
pub const CT_CHEST: Code = c("24627-2", "LN", "CT Chest");
/// (111028, DCM) TID 1600 Image Library.
pub const IMAGE_LIBRARY: Code = c("111028", "DCM", "Image Library");
/// (126200, DCM) TID 1600 Image Library Group.
pub const IMAGE_LIBRARY_GROUP: Code = c("126200", "DCM", "Image Library Group");
/// (121139, DCM) TID 1602 Modality.
pub const MODALITY: Code = c("121139", "DCM", "Modality");
/// (CT, DCM) CID 29 Acquisition Modality.
pub const COMPUTED_TOMOGRAPHY: Code = c("CT", "DCM", "Computed Tomography");
/// (123014, DCM) TID 1602 Target Region.
pub const TARGET_REGION: Code = c("123014", "DCM", "Target Region");
/// (816094009, SCT) Chest (CID 4009 and others).
pub const CHEST: Code = c("816094009", "SCT", "Chest");
/// (112227, DCM) TID 1602 Frame of Reference UID.
pub const FRAME_OF_REFERENCE_UID: Code = c("112227", "DCM", "Frame of Reference UID");
/// (126010, DCM) TID 1500 Imaging Measurements container.
pub const IMAGING_MEASUREMENTS: Code = c("126010", "DCM", "Imaging Measurements");
/// (C0034375, UMLS) TID 1500 row 12: the document-level qualitative evaluations.
pub const QUALITATIVE_EVALUATIONS: Code = c("C0034375", "UMLS", "Qualitative Evaluations");
/// (125007, DCM) TID 1411 Measurement Group.
pub const MEASUREMENT_GROUP: Code = c("125007", "DCM", "Measurement Group");
/// (112039, DCM) TID 4108 Tracking Identifier.
pub const TRACKING_IDENTIFIER: Code = c("112039", "DCM", "Tracking Identifier");
/// (112040, DCM) TID 4108 Tracking Unique Identifier.
pub const TRACKING_UID: Code = c("112040", "DCM", "Tracking Unique Identifier");
/// (121106, DCM) Comment (the disclaimer).
pub const COMMENT: Code = c("121106", "DCM", "Comment");

// ---- TID 4019 algorithm identification ----

/// (111001, DCM) TID 4019.
pub const ALGORITHM_NAME: Code = c("111001", "DCM", "Algorithm Name");
/// (111003, DCM) TID 4019.
pub const ALGORITHM_VERSION: Code = c("111003", "DCM", "Algorithm Version");
/// (111002, DCM) TID 4019.
pub const ALGORITHM_PARAMETERS: Code = c("111002", "DCM", "Algorithm Parameters");
/// (111000, DCM) TID 4019.
pub const ALGORITHM_FAMILY: Code = c("111000", "DCM", "Algorithm Family");
/// (123110, DCM) CID 7162 Artificial Intelligence.
pub const ARTIFICIAL_INTELLIGENCE: Code = c("123110", "DCM", "Artificial Intelligence");

// ---- finding (TID 1411 rows Finding Category / Finding / Finding Site) ----

/// (276214006, SCT) Finding category.
pub const FINDING_CATEGORY: Code = c("276214006", "SCT", "Finding category");
/// (49755003, SCT) CID 7150 Segmentation Property Categories.
pub const MORPHOLOGICALLY_ABNORMAL_STRUCTURE: Code =
    c("49755003", "SCT", "Morphologically Abnormal Structure");
/// (121071, DCM) Finding.
pub const FINDING: Code = c("121071", "DCM", "Finding");
/// (27925004, SCT) Nodule: CID 6102/6104 chest findings, CID 7151 property types.
pub const NODULE: Code = c("27925004", "SCT", "Nodule");
/// (4147007, SCT) Mass: CID 6102/6104, CID 7151.
pub const MASS: Code = c("4147007", "SCT", "Mass");
/// (363698007, SCT) Finding Site.
pub const FINDING_SITE: Code = c("363698007", "SCT", "Finding Site");
/// (39607008, SCT) Lung (SEG anatomic region).
pub const LUNG: Code = c("39607008", "SCT", "Lung");
/// (281392002, SCT) CID 6171 Zone of Lung.
pub const UPPER_ZONE_OF_LUNG: Code = c("281392002", "SCT", "Upper zone of lung");
/// (281393007, SCT) CID 6171 Zone of Lung.
pub const MIDDLE_ZONE_OF_LUNG: Code = c("281393007", "SCT", "Middle zone of lung");
/// (281394001, SCT) CID 6171 Zone of Lung.
pub const LOWER_ZONE_OF_LUNG: Code = c("281394001", "SCT", "Lower zone of lung");
/// (45653009, SCT) CID 6170 Lung Lobe: upper lobe (with Laterality).
pub const UPPER_LOBE_OF_LUNG: Code = c("45653009", "SCT", "Upper lobe of lung");
/// (72481006, SCT) CID 6170 Lung Lobe: middle lobe of the right lung.
pub const MIDDLE_LOBE_OF_RIGHT_LUNG: Code = c("72481006", "SCT", "Middle lobe of right lung");
/// (90572001, SCT) CID 6170 Lung Lobe: lower lobe (with Laterality).
pub const LOWER_LOBE_OF_LUNG: Code = c("90572001", "SCT", "Lower lobe of lung");
/// (68599007, SCT) CID 6126 Location in Lung: written for juxtapleural findings.
pub const SUBPLEURAL: Code = c("68599007", "SCT", "Subpleural");
/// (272741003, SCT) Laterality.
pub const LATERALITY: Code = c("272741003", "SCT", "Laterality");
/// (24028007, SCT) CID 244 Laterality.
pub const RIGHT: Code = c("24028007", "SCT", "Right");
/// (7771000, SCT) CID 244 Laterality.
pub const LEFT: Code = c("7771000", "SCT", "Left");

// ---- ROI references ----

/// (121191, DCM) TID 1411 Referenced Segment.
pub const REFERENCED_SEGMENT: Code = c("121191", "DCM", "Referenced Segment");
/// (121232, DCM) TID 1411 Source series for segmentation.
pub const SOURCE_SERIES_FOR_SEGMENTATION: Code =
    c("121232", "DCM", "Source series for segmentation");
/// (121231, DCM) TID 1411 Volume Surface.
pub const VOLUME_SURFACE: Code = c("121231", "DCM", "Volume Surface");
/// (121112, DCM) TID 300 Source of Measurement.
pub const SOURCE_OF_MEASUREMENT: Code = c("121112", "DCM", "Source of Measurement");
/// (260753009, SCT) Source: concept name of the axis coordinates (TID 320).
pub const SOURCE: Code = c("260753009", "SCT", "Source");

// ---- measurements (TID 1419 / TID 300, CID 7469 and CID 7464) ----

/// (103339001, SCT) CID 7469.
pub const LONG_AXIS: Code = c("103339001", "SCT", "Long Axis");
/// (103340004, SCT) CID 7469.
pub const SHORT_AXIS: Code = c("103340004", "SCT", "Short Axis");
/// (81827009, SCT) CID 7469; with Derivation = Mean it is the mean diameter.
pub const DIAMETER: Code = c("81827009", "SCT", "Diameter");
/// (118565006, SCT) CID 7469.
pub const VOLUME: Code = c("118565006", "SCT", "Volume");
/// (112031, DCM) CID 7469; with Derivation = Mean it is the mean attenuation.
pub const ATTENUATION_COEFFICIENT: Code = c("112031", "DCM", "Attenuation Coefficient");
/// (121401, DCM) TID 300 Derivation.
pub const DERIVATION: Code = c("121401", "DCM", "Derivation");
/// (373098007, SCT) CID 3488 / 7464 Mean.
pub const MEAN: Code = c("373098007", "SCT", "Mean");
/// (370129005, SCT) Measurement Method.
pub const MEASUREMENT_METHOD: Code = c("370129005", "SCT", "Measurement Method");
/// (111047, DCM) CID 6048 Probability of cancer (value in \[0, 1\], unit `1`).
pub const PROBABILITY_OF_CANCER: Code = c("111047", "DCM", "Probability of cancer");
/// (111012, DCM) CID 6048 Certainty of Finding: the model's nodule probability.
pub const CERTAINTY_OF_FINDING: Code = c("111012", "DCM", "Certainty of Finding");
/// (111005, DCM) Assessment Category: concept name of the Lung-RADS category.
pub const ASSESSMENT_CATEGORY: Code = c("111005", "DCM", "Assessment Category");
/// (112120, DCM) CID 6102/6104 Ground glass opacity (nodule type).
pub const GROUND_GLASS_OPACITY: Code = c("112120", "DCM", "Ground glass opacity");
/// (112001, DCM) CID 6102/6104 Opacity: the finding of the diffuse-opacity pattern group.
pub const OPACITY: Code = c("112001", "DCM", "Opacity");
/// (95436008, SCT) "Lung consolidation": the consolidation segment and
/// measurement groups. A SNOMED CT concept that no DICOM context group lists
/// (CID 6102 / 6104 have no consolidation); the interop test names it as
/// the one standard code outside pydicom's dictionaries.
pub const LUNG_CONSOLIDATION: Code = c("95436008", "SCT", "Lung consolidation");
/// (123104, DCM) "Morphological Operations", CID 7162 Segmentation Algorithm
/// Families: the opacity segments (HU bands, opening, component rules).
pub const MORPHOLOGICAL_OPERATIONS: Code = c("123104", "DCM", "Morphological Operations");
/// (cm3, UCUM) cubic centimeter (= mL), CID 7181: opacity volumes.
pub const UNIT_CM3: Code = c("cm3", "UCUM", "cubic centimeter");
/// (%, UCUM) Percent, CID 7181: share of a lung's volume.
pub const UNIT_PERCENT: Code = c("%", "UCUM", "Percent");
/// (237897009, SCT) CID 3712 Calcified (nodule type).
pub const CALCIFIED: Code = c("237897009", "SCT", "Calcified");
/// (260870009, SCT) Priority: concept name of the worklist triage priority.
pub const PRIORITY: Code = c("260870009", "SCT", "Priority");

// ---- units (UCUM, CID 7181) ----

/// Millimetre.
pub const UNIT_MM: Code = c("mm", "UCUM", "millimeter");
/// Cubic millimetre.
pub const UNIT_MM3: Code = c("mm3", "UCUM", "cubic millimeter");
/// Hounsfield unit.
pub const UNIT_HU: Code = c("[hnsf'U]", "UCUM", "Hounsfield unit");
/// Dimensionless (probabilities and scores in \[0, 1\]).
pub const UNIT_ONE: Code = c("1", "UCUM", "no units");

// ---- Key Object Selection (TID 2010) ----

/// (113000, DCM) CID 7010 Key Object Selection Document Title.
pub const OF_INTEREST: Code = c("113000", "DCM", "Of Interest");
/// (113012, DCM) TID 2010 Key Object Description.
pub const KEY_OBJECT_DESCRIPTION: Code = c("113012", "DCM", "Key Object Description");

// ---- SEG and SC ----

/// (113076, DCM) CID 7203 derivation code of a segmentation frame.
pub const SEGMENTATION_DERIVATION: Code = c("113076", "DCM", "Segmentation");
/// (121322, DCM) CID 7202 purpose of reference of a source image.
pub const SOURCE_IMAGE_FOR_PROCESSING: Code = c(
    "121322",
    "DCM",
    "Source image for image processing operation",
);

// ---- de-identification (CID 7050) ----

/// (113100, DCM).
pub const DEID_BASIC_PROFILE: Code =
    c("113100", "DCM", "Basic Application Confidentiality Profile");
/// (113104, DCM).
pub const DEID_CLEAN_STRUCTURED_CONTENT: Code =
    c("113104", "DCM", "Clean Structured Content Option");
/// (113105, DCM).
pub const DEID_CLEAN_DESCRIPTORS: Code = c("113105", "DCM", "Clean Descriptors Option");
/// (113106, DCM).
pub const DEID_RETAIN_FULL_DATES: Code = c(
    "113106",
    "DCM",
    "Retain Longitudinal Temporal Information Full Dates Option",
);
/// (113107, DCM).
pub const DEID_RETAIN_MODIFIED_DATES: Code = c(
    "113107",
    "DCM",
    "Retain Longitudinal Temporal Information Modified Dates Option",
);
/// (113108, DCM).
pub const DEID_RETAIN_PATIENT_CHARACTERISTICS: Code =
    c("113108", "DCM", "Retain Patient Characteristics Option");
/// (113109, DCM).
pub const DEID_RETAIN_DEVICE_IDENTITY: Code = c("113109", "DCM", "Retain Device Identity Option");
/// (113110, DCM).
pub const DEID_RETAIN_UIDS: Code = c("113110", "DCM", "Retain UIDs Option");
/// (113112, DCM).
pub const DEID_RETAIN_INSTITUTION_IDENTITY: Code =
    c("113112", "DCM", "Retain Institution Identity Option");

// ---- private codes (99CTT): no standard code exists ----

/// Concept name of the attenuation type (solid, part-solid, ground-glass, calcified).
pub const NODULE_TYPE: Code = c("NODTYPE", PRIVATE_SCHEME, "Nodule attenuation type");
/// Solid nodule.
pub const SOLID: Code = c("SOLID", PRIVATE_SCHEME, "Solid");
/// Part-solid nodule.
pub const PART_SOLID: Code = c("PARTSOLID", PRIVATE_SCHEME, "Part-solid");
/// Mean diameter of the solid component of a part-solid nodule (unit mm).
pub const SOLID_COMPONENT_DIAMETER: Code =
    c("SOLIDCOMP", PRIVATE_SCHEME, "Solid component mean diameter");
/// AI malignancy score of the model (not a calibrated probability of cancer; its own
/// concept, so that readers never confuse it with the Brock probability).
pub const AI_MALIGNANCY_SCORE: Code = c("AIMALIG", PRIVATE_SCHEME, "AI malignancy score");
/// Calcification pattern (concept name).
pub const CALCIFICATION_PATTERN: Code = c("CALCPAT", PRIVATE_SCHEME, "Calcification pattern");
/// No calcification.
pub const CALC_NONE: Code = c("CALCNONE", PRIVATE_SCHEME, "No calcification");
/// Complete (diffuse) calcification — benign.
pub const CALC_COMPLETE: Code = c("CALCCOMPLETE", PRIVATE_SCHEME, "Complete calcification");
/// Central calcification — benign.
pub const CALC_CENTRAL: Code = c("CALCCENTRAL", PRIVATE_SCHEME, "Central calcification");
/// Concentric (laminated) calcification — benign.
pub const CALC_LAMINATED: Code = c("CALCLAMINATED", PRIVATE_SCHEME, "Laminated calcification");
/// Popcorn calcification — benign.
pub const CALC_POPCORN: Code = c("CALCPOPCORN", PRIVATE_SCHEME, "Popcorn calcification");
/// Eccentric calcification — not a benign pattern.
pub const CALC_ECCENTRIC: Code = c("CALCECCENTRIC", PRIVATE_SCHEME, "Eccentric calcification");
/// Stippled calcification — not a benign pattern.
pub const CALC_STIPPLED: Code = c("CALCSTIPPLED", PRIVATE_SCHEME, "Stippled calcification");
/// The Lung-RADS v2022 management recommendation of a category (TEXT).
pub const LUNG_RADS_MANAGEMENT: Code = c(
    "LRMGMT",
    PRIVATE_SCHEME,
    "Lung-RADS management recommendation",
);
/// Why a Lung-RADS category was given (TEXT).
pub const LUNG_RADS_REASON: Code = c("LRREASON", PRIVATE_SCHEME, "Lung-RADS category reason");
/// Where the finding is on the source images: series and image number (TEXT).
pub const SOURCE_IMAGE_LOCATION: Code =
    c("IMAGELOC", PRIVATE_SCHEME, "Source series and image number");
/// A stated limit of the analysis (TEXT).
pub const LIMITATION: Code = c("LIMIT", PRIVATE_SCHEME, "Limitation of this analysis");
/// A warning about the input or the analysis (TEXT).
pub const ANALYSIS_WARNING: Code = c("WARNING", PRIVATE_SCHEME, "Analysis warning");
/// The triage rule set in words (TEXT).
pub const TRIAGE_RULE_SET: Code = c("TRIAGERULES", PRIVATE_SCHEME, "Triage rule set");
/// Measurement method of the Brock probability.
pub const BROCK_MODEL: Code = c(
    "BROCK",
    PRIVATE_SCHEME,
    "Brock University (PanCan) full model",
);
/// Triage score in \[0, 1\] (a property of the priority).
pub const TRIAGE_SCORE: Code = c("TRIAGESCORE", PRIVATE_SCHEME, "Triage score");
/// A rule that set the triage priority.
pub const TRIAGE_REASON: Code = c("TRIAGEREASON", PRIVATE_SCHEME, "Triage reason");
/// Lung-RADS v2022 category 0 (incomplete: the analysis was inconclusive).
pub const LUNG_RADS_0: Code = c("LR0", PRIVATE_SCHEME, "Lung-RADS v2022 category 0");
/// Lung-RADS v2022 category 1.
pub const LUNG_RADS_1: Code = c("LR1", PRIVATE_SCHEME, "Lung-RADS v2022 category 1");
/// Lung-RADS v2022 category 2.
pub const LUNG_RADS_2: Code = c("LR2", PRIVATE_SCHEME, "Lung-RADS v2022 category 2");
/// Lung-RADS v2022 category 3.
pub const LUNG_RADS_3: Code = c("LR3", PRIVATE_SCHEME, "Lung-RADS v2022 category 3");
/// Lung-RADS v2022 category 4A.
pub const LUNG_RADS_4A: Code = c("LR4A", PRIVATE_SCHEME, "Lung-RADS v2022 category 4A");
/// Lung-RADS v2022 category 4B.
pub const LUNG_RADS_4B: Code = c("LR4B", PRIVATE_SCHEME, "Lung-RADS v2022 category 4B");
/// Lung-RADS v2022 category 4X.
pub const LUNG_RADS_4X: Code = c("LR4X", PRIVATE_SCHEME, "Lung-RADS v2022 category 4X");
/// Share of a lung's volume taken by an opacity (NUM, unit %).
pub const PERCENT_OF_LUNG: Code = c("LUNGPCT", PRIVATE_SCHEME, "Percent of lung volume");
/// CT severity score of Pan et al. (Radiology 2020;295:715-721), 0-25 (NUM, unit 1).
pub const CT_SEVERITY_SCORE: Code = c("CTSS", PRIVATE_SCHEME, "CT severity score (Pan 2020)");
/// Emphysema index: percent of lung voxels below -950 HU (NUM, unit %).
pub const LAA950: Code = c(
    "LAA950",
    PRIVATE_SCHEME,
    "Low attenuation area below -950 HU",
);
/// Where the diffuse opacities are, in words (TEXT): laterality, peripheral /
/// central, predominant zone.
pub const OPACITY_DISTRIBUTION: Code =
    c("OPACDIST", PRIVATE_SCHEME, "Diffuse opacity distribution");
/// Triage priority: urgent.
pub const TRIAGE_URGENT: Code = c("URGENT", PRIVATE_SCHEME, "Urgent");
/// Triage priority: priority.
pub const TRIAGE_PRIORITY: Code = c("PRIORITY", PRIVATE_SCHEME, "Priority");
/// Triage priority: routine.
pub const TRIAGE_ROUTINE: Code = c("ROUTINE", PRIVATE_SCHEME, "Routine");
/// Triage priority: inconclusive.
pub const TRIAGE_INCONCLUSIVE: Code = c("INCONCLUSIVE", PRIVATE_SCHEME, "Inconclusive");

use ct_triage_analysis::report::{
    CalcificationPattern, FindingKind, Lobe, LungRads, NoduleType, Priority, Side, Zone,
};

/// The code of a Lung-RADS category (`None`, as older reports wrote it, = category 0).
pub fn lung_rads(c: Option<LungRads>) -> Code {
    match c {
        None | Some(LungRads::Cat0) => LUNG_RADS_0,
        Some(LungRads::Cat1) => LUNG_RADS_1,
        Some(LungRads::Cat2) => LUNG_RADS_2,
        Some(LungRads::Cat3) => LUNG_RADS_3,
        Some(LungRads::Cat4A) => LUNG_RADS_4A,
        Some(LungRads::Cat4B) => LUNG_RADS_4B,
        Some(LungRads::Cat4X) => LUNG_RADS_4X,
    }
}

/// The code of an attenuation type.
pub fn nodule_type(t: NoduleType) -> Code {
    match t {
        NoduleType::Solid => SOLID,
        NoduleType::PartSolid => PART_SOLID,
        NoduleType::GroundGlass => GROUND_GLASS_OPACITY,
        NoduleType::Calcified => CALCIFIED,
    }
}

/// The code of a finding kind.
pub fn finding_kind(k: FindingKind) -> Code {
    match k {
        FindingKind::Nodule => NODULE,
        FindingKind::Mass => MASS,
    }
}

/// The code of a side.
pub fn side(s: Side) -> Code {
    match s {
        Side::Right => RIGHT,
        Side::Left => LEFT,
    }
}

/// The code of a calcification pattern.
pub fn calcification(p: CalcificationPattern) -> Code {
    match p {
        CalcificationPattern::Absent => CALC_NONE,
        CalcificationPattern::Complete => CALC_COMPLETE,
        CalcificationPattern::Central => CALC_CENTRAL,
        CalcificationPattern::Laminated => CALC_LAMINATED,
        CalcificationPattern::Popcorn => CALC_POPCORN,
        CalcificationPattern::Eccentric => CALC_ECCENTRIC,
        CalcificationPattern::Stippled => CALC_STIPPLED,
    }
}

/// The Finding Site code of a lobe (`None` when unknown: the site is then the lung).
pub fn lobe(l: Lobe) -> Option<Code> {
    match l {
        Lobe::RightUpper | Lobe::LeftUpper => Some(UPPER_LOBE_OF_LUNG),
        Lobe::RightMiddle => Some(MIDDLE_LOBE_OF_RIGHT_LUNG),
        Lobe::RightLower | Lobe::LeftLower => Some(LOWER_LOBE_OF_LUNG),
        Lobe::Unknown => None,
    }
}

/// The code of a zone of the lung.
pub fn zone(z: Zone) -> Code {
    match z {
        Zone::Upper => UPPER_ZONE_OF_LUNG,
        Zone::Middle => MIDDLE_ZONE_OF_LUNG,
        Zone::Lower => LOWER_ZONE_OF_LUNG,
    }
}

/// The code of a triage priority.
pub fn priority(p: Priority) -> Code {
    match p {
        Priority::Urgent => TRIAGE_URGENT,
        Priority::Priority => TRIAGE_PRIORITY,
        Priority::Routine => TRIAGE_ROUTINE,
        Priority::Inconclusive => TRIAGE_INCONCLUSIVE,
    }
}

/// Every code defined here (for documentation and for the tests that check
/// the standard ones against an independent dictionary).
pub fn all() -> Vec<Code> {
    vec![
        IMAGING_MEASUREMENT_REPORT,
        LANGUAGE_OF_CONTENT,
        ENGLISH_US,
        OBSERVER_TYPE,
        DEVICE,
        DEVICE_OBSERVER_UID,
        DEVICE_OBSERVER_NAME,
        DEVICE_OBSERVER_MANUFACTURER,
        DEVICE_OBSERVER_MODEL_NAME,
        PROCEDURE_REPORTED,
        CT_CHEST,
        IMAGE_LIBRARY,
        IMAGE_LIBRARY_GROUP,
        MODALITY,
        COMPUTED_TOMOGRAPHY,
        TARGET_REGION,
        CHEST,
        FRAME_OF_REFERENCE_UID,
        IMAGING_MEASUREMENTS,
        QUALITATIVE_EVALUATIONS,
        MEASUREMENT_GROUP,
        TRACKING_IDENTIFIER,
        TRACKING_UID,
        COMMENT,
        ALGORITHM_NAME,
        ALGORITHM_VERSION,
        ALGORITHM_PARAMETERS,
        ALGORITHM_FAMILY,
        ARTIFICIAL_INTELLIGENCE,
        FINDING_CATEGORY,
        MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        FINDING,
        NODULE,
        MASS,
        FINDING_SITE,
        LUNG,
        UPPER_ZONE_OF_LUNG,
        MIDDLE_ZONE_OF_LUNG,
        LOWER_ZONE_OF_LUNG,
        UPPER_LOBE_OF_LUNG,
        MIDDLE_LOBE_OF_RIGHT_LUNG,
        LOWER_LOBE_OF_LUNG,
        SUBPLEURAL,
        LATERALITY,
        RIGHT,
        LEFT,
        REFERENCED_SEGMENT,
        SOURCE_SERIES_FOR_SEGMENTATION,
        VOLUME_SURFACE,
        SOURCE_OF_MEASUREMENT,
        SOURCE,
        LONG_AXIS,
        SHORT_AXIS,
        DIAMETER,
        VOLUME,
        ATTENUATION_COEFFICIENT,
        DERIVATION,
        MEAN,
        MEASUREMENT_METHOD,
        PROBABILITY_OF_CANCER,
        CERTAINTY_OF_FINDING,
        ASSESSMENT_CATEGORY,
        GROUND_GLASS_OPACITY,
        CALCIFIED,
        PRIORITY,
        UNIT_MM,
        UNIT_MM3,
        UNIT_HU,
        UNIT_ONE,
        OF_INTEREST,
        KEY_OBJECT_DESCRIPTION,
        SEGMENTATION_DERIVATION,
        SOURCE_IMAGE_FOR_PROCESSING,
        DEID_BASIC_PROFILE,
        DEID_CLEAN_STRUCTURED_CONTENT,
        DEID_CLEAN_DESCRIPTORS,
        DEID_RETAIN_FULL_DATES,
        DEID_RETAIN_MODIFIED_DATES,
        DEID_RETAIN_PATIENT_CHARACTERISTICS,
        DEID_RETAIN_DEVICE_IDENTITY,
        DEID_RETAIN_UIDS,
        DEID_RETAIN_INSTITUTION_IDENTITY,
        NODULE_TYPE,
        SOLID,
        PART_SOLID,
        SOLID_COMPONENT_DIAMETER,
        AI_MALIGNANCY_SCORE,
        CALCIFICATION_PATTERN,
        CALC_NONE,
        CALC_COMPLETE,
        CALC_CENTRAL,
        CALC_LAMINATED,
        CALC_POPCORN,
        CALC_ECCENTRIC,
        CALC_STIPPLED,
        LUNG_RADS_MANAGEMENT,
        LUNG_RADS_REASON,
        SOURCE_IMAGE_LOCATION,
        LIMITATION,
        ANALYSIS_WARNING,
        TRIAGE_RULE_SET,
        BROCK_MODEL,
        TRIAGE_SCORE,
        TRIAGE_REASON,
        LUNG_RADS_0,
        LUNG_RADS_1,
        LUNG_RADS_2,
        LUNG_RADS_3,
        LUNG_RADS_4A,
        LUNG_RADS_4B,
        LUNG_RADS_4X,
        TRIAGE_URGENT,
        TRIAGE_PRIORITY,
        TRIAGE_ROUTINE,
        TRIAGE_INCONCLUSIVE,
    ]
}
