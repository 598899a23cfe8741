//! The series header every object writer shares: content date/time, Series
//! Number, Series Description, Manufacturer and Series Instance UID.
//!
//! [`SrOptions`](super::SrOptions), [`SegOptions`](super::SegOptions),
//! [`ScOptions`](super::ScOptions) and [`KosOptions`](super::kos::KosOptions)
//! each hold one [`SeriesHeader`] (field `header`) beside what is their own,
//! and get its builder methods from [`SeriesOptions`]:
//!
//! ```
//! use ct_triage_dicom::export::{ContentDateTime, SeriesOptions, SrOptions};
//! let o = SrOptions::new()
//!     .content(ContentDateTime::new("20240102", "030405")?)
//!     .series_number(42)
//!     .manufacturer("County Hospital AI");
//! assert_eq!(o.header.series_number, 42);
//! assert_eq!(o.header.series_description, "ct-triage AI lung nodule report");
//! # Ok::<(), ct_triage_dicom::Error>(())
//! ```

use dicom_core::VR;
use dicom_dictionary_std::tags;

use super::ContentDateTime;
use super::build::{Obj, put_is, put_str};

/// Series-level attributes of one written object series. Defaults differ per
/// object kind (Series Number 9001 SR, 9002 SEG, 9003 key images, 9004 KOS);
/// see each options type.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesHeader {
    /// Content date/time. Default `None`: the current UTC time (the only
    /// time-dependent input; fix it for reproducible output).
    pub content: Option<ContentDateTime>,
    /// Series Number.
    pub series_number: i64,
    /// Series Description.
    pub series_description: String,
    /// Manufacturer (General Equipment). Default "ct-triage".
    pub manufacturer: String,
    /// Series Instance UID. Default none: derived from the analysis, the
    /// object kind and the content time.
    pub series_instance_uid: Option<String>,
}

impl SeriesHeader {
    /// A header with this Series Number and Description, manufacturer
    /// "ct-triage", content time now and derived UIDs.
    pub fn new(series_number: i64, series_description: impl Into<String>) -> Self {
        SeriesHeader {
            content: None,
            series_number,
            series_description: series_description.into(),
            manufacturer: "ct-triage".into(),
            series_instance_uid: None,
        }
    }

    /// The content date/time: the one set, else now.
    pub(crate) fn when(&self) -> ContentDateTime {
        self.content
            .clone()
            .unwrap_or_else(ContentDateTime::now_utc)
    }

    /// The content date/time: the one set, else `fallback`.
    pub(crate) fn when_or(&self, fallback: &ContentDateTime) -> ContentDateTime {
        self.content.clone().unwrap_or_else(|| fallback.clone())
    }

    /// Fix an unset content date/time to `when`, so objects written together agree.
    pub(crate) fn default_content(&mut self, when: &ContentDateTime) {
        if self.content.is_none() {
            self.content = Some(when.clone());
        }
    }

    /// General Series: Modality, Series Instance UID, Series Number, Series Description.
    pub(crate) fn put_series(&self, ds: &mut Obj, modality: &str, series_uid: &str) {
        put_str(ds, tags::MODALITY, VR::CS, modality);
        put_str(ds, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
        put_is(ds, tags::SERIES_NUMBER, self.series_number);
        put_str(
            ds,
            tags::SERIES_DESCRIPTION,
            VR::LO,
            &self.series_description,
        );
    }
}

/// Builder methods on the [`SeriesHeader`] of an options type.
pub trait SeriesOptions: Sized {
    /// The header of these options.
    fn header_mut(&mut self) -> &mut SeriesHeader;

    /// Set the content date/time.
    fn content(mut self, when: ContentDateTime) -> Self {
        self.header_mut().content = Some(when);
        self
    }
    /// Set the Series Number.
    fn series_number(mut self, n: i64) -> Self {
        self.header_mut().series_number = n;
        self
    }
    /// Set the Series Description.
    fn series_description(mut self, s: impl Into<String>) -> Self {
        self.header_mut().series_description = s.into();
        self
    }
    /// Set the Manufacturer.
    fn manufacturer(mut self, s: impl Into<String>) -> Self {
        self.header_mut().manufacturer = s.into();
        self
    }
    /// Use this Series Instance UID.
    fn series_instance_uid(mut self, s: impl Into<String>) -> Self {
        self.header_mut().series_instance_uid = Some(s.into());
        self
    }
}

/// `impl SeriesOptions` for an options struct with a `header` field.
macro_rules! series_options {
    ($($t:ty),*) => {$(
        impl $crate::export::header::SeriesOptions for $t {
            fn header_mut(&mut self) -> &mut $crate::export::header::SeriesHeader {
                &mut self.header
            }
        }
    )*};
}
pub(crate) use series_options;
