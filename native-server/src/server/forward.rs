//! Forwarding a finished job's DICOM objects (and, if configured, its inputs)
//! to PACS: C-STORE to a DICOM node or STOW-RS to a DICOMweb root.

use std::path::Path;

use serde_json::json;

use super::Server;
use crate::config::ForwardTo;
use crate::dicomweb;
use crate::input::{is_zip, list_files};
use crate::jobs::Job;
use crate::metrics::ResultLabel;
use crate::output;
use crate::runner::input_paths;
use crate::scu;

impl Server {
    /// Send the job's DICOM objects (and, if configured, its inputs) to the
    /// forwarding destination, recording the result on the job.
    pub(super) fn forward(&self, job: &Job, result: &Path) {
        let dest = match self.cfg.destination() {
            Ok(Some(d)) => d,
            _ => return,
        };
        let mut files = output::dicom_objects(result).unwrap_or_default();
        if self.cfg.forward_inputs {
            let inputs = list_files(&input_paths(&job.input)).unwrap_or_default();
            files.extend(inputs.into_iter().filter(|p| !is_zip(p)));
        }
        let status = if files.is_empty() {
            "none: no DICOM objects to send".to_string()
        } else {
            let sent = match &dest {
                ForwardTo::Dimse(d) => scu::send(&files, d, &self.cfg.ae_title),
                ForwardTo::Dicomweb(t) => self
                    .cfg
                    .forward_authorization()
                    .and_then(|auth| dicomweb::store(&files, t, auth.as_deref())),
            };
            match sent {
                Ok(sent) => {
                    for (result, n) in [("stored", sent.stored), ("failed", sent.failed.len())] {
                        self.metrics
                            .forwarded
                            .get_or_create(&ResultLabel {
                                result: result.into(),
                            })
                            .inc_by(n as u64);
                    }
                    for (f, why) in &sent.failed {
                        tracing::warn!(job = %job.id, file = %f, "not forwarded: {why}");
                    }
                    format!("sent {}/{} to {dest}", sent.stored, files.len())
                }
                Err(e) => format!("error: {e}"),
            }
        };
        let outcome = if status.starts_with("error") {
            "error"
        } else {
            "ok"
        };
        self.audit.log(
            "server",
            "forward",
            Some(&job.id),
            outcome,
            json!({"destination": dest.to_string(), "status": status}),
        );
        if let Err(e) = self.store.set_forward(&job.id, &status) {
            tracing::error!("recording forward status: {e}");
        }
    }
}
