//! Running one job end to end — gather its input, call the core, write the
//! result folder atomically, record the outcome — and recovering the jobs a
//! crashed process left `running`. Shared by `batch` and the server.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ct_triage_core::classify::Classifier;
use ct_triage_core::pipeline::{Analysis, AnalysisOptions, analyze};
use ct_triage_core::progress::Progress;
use ct_triage_core::report::Report;

use crate::error::{NativeError, Result};
use crate::input::gather;
use crate::jobs::{Job, JobState, JobStore, Outcome, Summary};
use crate::output::{self, OutputOptions, REPORT_FILE};

/// Analyse the files under `paths` (folders, zips, files). A panic in the
/// analysis is contained and returned as [`NativeError::Panic`].
pub fn analyze_paths(
    paths: &[PathBuf],
    opts: &AnalysisOptions,
    classifier: &dyn Classifier,
    progress: &dyn Progress,
) -> Result<(Analysis, usize)> {
    let gathered = gather(paths)?;
    if gathered.files.is_empty() {
        return Err(NativeError::Input(format!(
            "no readable file under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let unreadable = gathered.unreadable.len();
    let run = catch_unwind(AssertUnwindSafe(|| {
        analyze(&gathered.inputs(), opts, classifier, progress)
    }));
    match run {
        Ok(r) => Ok((r?, unreadable)),
        Err(p) => Err(NativeError::Panic(panic_message(p.as_ref()))),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// The paths of a job's input (one per line).
pub fn input_paths(input: &str) -> Vec<PathBuf> {
    input
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Where a job's result folder goes and where it is prepared.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The published result folder.
    pub dest: PathBuf,
    /// Scratch folder on the same filesystem, renamed to `dest` when complete.
    pub tmp: PathBuf,
}

/// Run a claimed job: analyse, write the result into `place.tmp` as `out`
/// says, publish it to `place.dest`, then record the outcome (one
/// transaction). The recorded summary is taken from the report as written
/// (de-identified when `out` de-identifies). Returns the outcome that was
/// recorded.
pub fn run_job(
    store: &dyn JobStore,
    job: &Job,
    base: &AnalysisOptions,
    out: &OutputOptions,
    classifier: &dyn Classifier,
    place: &Placement,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let mut opts = base.clone();
    if job.series.is_some() {
        opts.ingest.series = job.series.clone();
    }
    let produced = analyze_paths(&input_paths(&job.input), &opts, classifier, progress).and_then(
        |(analysis, _)| {
            if place.tmp.exists() {
                std::fs::remove_dir_all(&place.tmp).map_err(|e| NativeError::io(&place.tmp, e))?;
            }
            let written = output::write_analysis(&place.tmp, &analysis, out)?;
            output::publish(&place.tmp, &place.dest)?;
            Ok(Summary::of(written.report_of(&analysis)))
        },
    );
    let outcome = match produced {
        Ok(summary) => Outcome::Done {
            output: place.dest.display().to_string(),
            summary,
        },
        Err(e) => {
            let _ = std::fs::remove_dir_all(&place.tmp);
            Outcome::Failed {
                code: e.code().to_string(),
                message: e.to_string(),
            }
        }
    };
    store.finish(&job.id, &outcome)?;
    Ok(outcome)
}

/// Read a published result folder's report.
pub fn read_report(dir: &Path) -> Result<Report> {
    let path = dir.join(REPORT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| NativeError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| NativeError::Output(format!("{}: {e}", path.display())))
}

/// After a crash: every job still `running` either had its result folder
/// published (then it is adopted as done, not run again) or goes back to the
/// queue. Returns `(adopted, requeued)`. Call before starting workers.
pub fn recover(store: &dyn JobStore, place: &dyn Fn(&Job) -> Placement) -> Result<(usize, usize)> {
    let (mut adopted, mut requeued) = (0, 0);
    for job in store.list(Some(JobState::Running))? {
        let p = place(&job);
        let _ = std::fs::remove_dir_all(&p.tmp);
        match output::is_complete(&p.dest)
            .then(|| read_report(&p.dest))
            .transpose()
        {
            Ok(Some(report)) => {
                store.adopt(
                    &job.id,
                    &Outcome::Done {
                        output: p.dest.display().to_string(),
                        summary: Summary::of(&report),
                    },
                )?;
                adopted += 1;
            }
            _ => {
                if p.dest.exists() {
                    let _ = std::fs::remove_dir_all(&p.dest);
                }
                store.requeue(&job.id, "interrupted")?;
                requeued += 1;
            }
        }
    }
    Ok((adopted, requeued))
}
