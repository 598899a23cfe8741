//! DICOM instances received by the SCP: filed by series under `incoming/`, turned
//! into a job once the series is quiet, picked up again after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use dicom_object::file::ReadPreamble;
use serde_json::json;

use super::{Server, mkdir};
use crate::dimse::{status, trim_uid};
use crate::error::{NativeError, Result};
use crate::scp::{InstanceSink, Peer, Received};

/// A DICOM series being received.
#[derive(Debug)]
pub(super) struct Pending {
    last: Instant,
    count: usize,
    peer: String,
}

/// UIDs become folder names: only digits and dots, 1–64 characters.
fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl Server {
    /// Register series folders left in `incoming/` by a previous run.
    pub(super) fn resume_incoming(&self) -> Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let rd = std::fs::read_dir(&self.dirs.incoming)
            .map_err(|e| NativeError::io(&self.dirs.incoming, e))?;
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && valid_uid(&name) {
                let count = std::fs::read_dir(entry.path())
                    .map(|r| r.count())
                    .unwrap_or(0);
                pending.insert(
                    name,
                    Pending {
                        last: Instant::now(),
                        count,
                        peer: "ae:(before restart)".into(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Turn every series that has been quiet long enough into a job.
    pub fn flush_quiet_series(&self, force: bool) {
        let quiet = Duration::from_secs_f64(self.cfg.quiet_seconds);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let ready: Vec<String> = pending
            .iter()
            .filter(|(_, p)| force || p.last.elapsed() >= quiet)
            .map(|(k, _)| k.clone())
            .collect();
        for series in ready {
            let Some(p) = pending.remove(&series) else {
                continue;
            };
            let src = self.dirs.incoming.join(&series);
            let input = self.dirs.inputs.join(uuid::Uuid::new_v4().to_string());
            let submitted = std::fs::rename(&src, &input)
                .map_err(|e| NativeError::io(&src, e))
                .and_then(|_| {
                    self.submit(
                        &input,
                        "dicom",
                        &p.peer,
                        Some(series.clone()),
                        json!({"series": series, "instances": p.count}),
                    )
                });
            if let Err(e) = submitted {
                tracing::warn!(%series, "series not queued yet: {e}");
                if input.exists() {
                    let _ = std::fs::rename(&input, &src);
                }
                pending.insert(
                    series,
                    Pending {
                        last: Instant::now(),
                        ..p
                    },
                );
            }
        }
    }

    fn store_instance(&self, peer: &Peer, inst: &Received) -> Result<u16> {
        if !valid_uid(inst.sop_instance) {
            return Ok(status::CANNOT_UNDERSTAND);
        }
        let bytes = inst.to_part10()?;
        let obj = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Auto)
            .read_until(tags::PIXEL_DATA)
            .from_reader(&bytes[..])
            .map_err(|e| NativeError::Network(format!("unreadable instance: {e}")))?;
        let series = obj
            .element(tags::SERIES_INSTANCE_UID)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(&s).to_string())
            .unwrap_or_default();
        if !valid_uid(&series) {
            return Ok(status::CANNOT_UNDERSTAND);
        }
        let tmp_dir = self.dirs.incoming.join(".tmp");
        mkdir(&tmp_dir)?;
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().to_string());
        std::fs::write(&tmp, &bytes).map_err(|e| NativeError::io(&tmp, e))?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pending.entry(series.clone()).or_insert_with(|| Pending {
            last: Instant::now(),
            count: 0,
            peer: format!("ae:{}@{}", peer.ae_title, peer.addr.ip()),
        });
        if entry.count >= self.cfg.max_instances {
            let _ = std::fs::remove_file(&tmp);
            return Ok(status::OUT_OF_RESOURCES);
        }
        let dir = self.dirs.incoming.join(&series);
        mkdir(&dir)?;
        let dest = dir.join(format!("{}.dcm", inst.sop_instance));
        std::fs::rename(&tmp, &dest).map_err(|e| NativeError::io(&dest, e))?;
        entry.count += 1;
        entry.last = Instant::now();
        self.metrics.instances_received.inc();
        Ok(status::SUCCESS)
    }
}

/// The SCP's sink: files instances by series under `incoming/`.
pub(super) struct Sink(pub(super) Arc<Server>);

impl InstanceSink for Sink {
    fn store(&self, peer: &Peer, instance: &Received) -> u16 {
        match self.0.store_instance(peer, instance) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(peer = %peer.ae_title, "instance not stored: {e}");
                status::CANNOT_UNDERSTAND
            }
        }
    }

    fn association_closed(&self, peer: &Peer, stored: usize) {
        self.0.audit.log(
            &format!("ae:{}@{}", peer.ae_title, peer.addr.ip()),
            "dicom_store",
            None,
            "ok",
            json!({"instances": stored}),
        );
    }
}
