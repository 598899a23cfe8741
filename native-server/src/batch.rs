//! `ct-triage batch`: every study under a root folder, series analysed in
//! parallel, resumable after any interruption.
//!
//! 1. **Discover** sources under ROOT: each zip archive and each top-level
//!    folder (read recursively) is one source; loose files directly in ROOT
//!    form the source `.`. A source is scanned once (headers parsed by core)
//!    and its eligible series become jobs, in one transaction with the record
//!    that the source was scanned.
//! 2. **Recover** jobs a killed run left `running`: adopted as done if their
//!    result folder was published, otherwise queued again.
//! 3. **Analyse** queued jobs on `--jobs` threads (rayon): each result is
//!    written to `OUT/.tmp/<job>`, renamed to `OUT/series/<name>` and then
//!    marked done — so a series is never processed twice and no result is
//!    lost, even after `kill -9`. A failing series is recorded and the rest
//!    goes on.
//! 4. Write `OUT/worklist.csv` and `OUT/worklist.json` (reading order).
//!
//! State lives in `OUT/jobs.sqlite`; rerunning the same command resumes.
//! Do not run two batches on the same OUT at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ct_triage_core::classify::Classifier;
use ct_triage_core::ingest::{self, InputFile};
use ct_triage_core::pipeline::AnalysisOptions;
use ct_triage_core::progress::NoProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use rayon::prelude::*;

use crate::error::{NativeError, Result};
use crate::input::{gather, is_zip, list_files};
use crate::jobs::{Counts, Job, JobStore, NewJob, Outcome, SqliteJobStore};
use crate::output::OutputOptions;
use crate::progress::{BarProgress, overall_style};
use crate::runner::{Placement, recover, run_job};
use crate::worklist;

/// Options of a batch run.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Parallel series (threads). Default: the number of cores.
    pub jobs: usize,
    /// Analyse only the series core selects per source, not every eligible one.
    pub selected_only: bool,
    /// Analysis options applied to every series.
    pub analysis: AnalysisOptions,
    /// Draw progress bars on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// How result folders are written (de-identification). With
    /// de-identification, result folders are named by job id
    /// (`series/<job id>`) instead of source and series UID.
    pub output: OutputOptions,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            selected_only: false,
            analysis: AnalysisOptions::default(),
            progress: true,
            output: OutputOptions::default(),
        }
    }
}

/// One source of studies under ROOT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Path relative to ROOT (`.` for loose files in ROOT).
    pub rel: String,
    /// Files or folders to read.
    pub paths: Vec<PathBuf>,
}

/// What a batch run did.
#[derive(Debug, Clone, Default)]
pub struct BatchSummary {
    /// Sources found under ROOT.
    pub sources: usize,
    /// Sources scanned in this run (the others were scanned before).
    pub scanned_now: usize,
    /// Jobs a previous run left running and that were adopted as done.
    pub adopted: usize,
    /// Jobs a previous run left running and that were queued again.
    pub requeued: usize,
    /// Jobs analysed in this run.
    pub analysed_now: usize,
    /// Final job counts.
    pub counts: Counts,
    /// Failed jobs (label, message).
    pub failures: Vec<(String, String)>,
    /// Wall time of this run in seconds.
    pub seconds: f64,
}

/// Find the sources under `root`.
pub fn discover(root: &Path) -> Result<Vec<Source>> {
    let meta = std::fs::metadata(root).map_err(|e| NativeError::io(root, e))?;
    if !meta.is_dir() {
        let name = root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        return Ok(vec![Source {
            rel: name,
            paths: vec![root.to_path_buf()],
        }]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| NativeError::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    let mut sources = Vec::new();
    let mut loose = Vec::new();
    for p in entries {
        let rel = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_dir() {
            if !list_files(std::slice::from_ref(&p))?.is_empty() {
                sources.push(Source {
                    rel,
                    paths: vec![p],
                });
            }
        } else if is_zip(&p) {
            sources.push(Source {
                rel,
                paths: vec![p],
            });
        } else if p.is_file() {
            loose.push(p);
        }
    }
    if !loose.is_empty() {
        sources.push(Source {
            rel: ".".into(),
            paths: loose,
        });
    }
    Ok(sources)
}

/// A file/folder name from free text: `[A-Za-z0-9._-]`, others as `_`.
pub fn slug(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match out.as_str() {
        "" | "." | ".." => "root".into(),
        _ => out,
    }
}

/// Jobs for one source: one per eligible series (or the selected one only).
/// A source without an analysable series still gets one job, which fails with
/// core's reason, so it is reported.
pub fn jobs_of_source(src: &Source, selected_only: bool, opts: &AnalysisOptions) -> Vec<NewJob> {
    let input = src
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let job = |series: Option<String>| NewJob {
        dedup_key: Some(format!(
            "{}\u{1f}{}",
            src.rel,
            series.as_deref().unwrap_or("")
        )),
        source: "batch".into(),
        submitted_by: "cli".into(),
        input: input.clone(),
        label: match &series {
            Some(s) => format!("{} [{}]", src.rel, s),
            None => src.rel.clone(),
        },
        series,
    };
    let keys: Vec<String> = match gather(&src.paths) {
        Ok(g) => {
            let files: Vec<InputFile> = g.inputs();
            match ingest::scan(&files, &opts.ingest, &NoProgress) {
                Ok(scan) => scan
                    .inventory()
                    .studies
                    .iter()
                    .flat_map(|s| &s.series)
                    .filter(|s| {
                        if selected_only {
                            s.selected
                        } else {
                            s.eligible
                        }
                    })
                    .map(|s| s.key.clone())
                    .collect(),
                Err(_) => Vec::new(),
            }
        }
        Err(_) => Vec::new(),
    };
    if keys.is_empty() {
        return vec![job(None)];
    }
    keys.into_iter().map(|k| job(Some(k))).collect()
}

/// Where a batch job's result goes: `OUT/series/<source>--<job id>`, or
/// `OUT/series/<job id>` when the results are `deidentified` (the source
/// name would identify them). The job id makes every result folder unique
/// by construction: sources whose names sanitise alike (`p 1` and `p_1`)
/// never share one.
pub fn placement(out: &Path, job: &Job, deidentified: bool) -> Placement {
    // The dedup key is `<source>\u{1f}<series>` (see `jobs_of_source`).
    let key = job.dedup_key.as_deref().unwrap_or(&job.id);
    let source = key.split_once('\u{1f}').map_or(key, |(rel, _)| rel);
    let name = if deidentified {
        slug(&job.id)
    } else {
        let readable: String = slug(source).chars().take(64).collect();
        format!("{readable}--{}", slug(&job.id))
    };
    Placement {
        dest: out.join("series").join(name),
        tmp: out.join(".tmp").join(&job.id),
    }
}

fn say(multi: &MultiProgress, visible: bool, line: String) {
    if visible {
        let _ = multi.println(line);
    } else {
        eprintln!("{line}");
    }
}

/// Run (or resume) a batch over `root`, writing into `out`.
pub fn run(
    root: &Path,
    out: &Path,
    classifier: Arc<dyn Classifier>,
    opts: &BatchOptions,
) -> Result<BatchSummary> {
    let start = Instant::now();
    crate::private_fs::create_dir(out)?;
    let store = SqliteJobStore::open(&out.join("jobs.sqlite"))?;
    let mut summary = BatchSummary::default();
    let threads = opts.jobs.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ctt-batch-{i}"))
        .build()
        .map_err(|e| NativeError::Config(format!("thread pool: {e}")))?;

    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let visible = !multi.is_hidden();

    // 1. Recover what a killed run left running.
    let out_buf = out.to_path_buf();
    let deidentified = opts.output.deidentify.is_some();
    let place = move |j: &Job| placement(&out_buf, j, deidentified);
    let (adopted, requeued) = recover(&store, &place)?;
    summary.adopted = adopted;
    summary.requeued = requeued;
    if adopted + requeued > 0 {
        say(
            &multi,
            visible,
            format!(
                "resuming: {adopted} finished series adopted, {requeued} interrupted series queued again"
            ),
        );
    }
    let _ = std::fs::remove_dir_all(out.join(".tmp"));

    // 2. Discover and scan new sources.
    let sources = discover(root)?;
    summary.sources = sources.len();
    let seen = store.scanned_sources()?;
    let new: Vec<&Source> = sources.iter().filter(|s| !seen.contains(&s.rel)).collect();
    summary.scanned_now = new.len();
    if !new.is_empty() {
        let bar = multi.add(ProgressBar::new(new.len() as u64));
        bar.set_style(overall_style());
        bar.set_prefix("scanning sources");
        pool.install(|| {
            new.par_iter().try_for_each(|src| {
                let jobs = jobs_of_source(src, opts.selected_only, &opts.analysis);
                store.record_source(&src.rel, &jobs)?;
                bar.inc(1);
                Ok::<(), NativeError>(())
            })
        })?;
        bar.finish_and_clear();
    }

    // 3. Analyse.
    let counts = store.counts()?;
    let overall = multi.add(ProgressBar::new(counts.total()));
    overall.set_style(overall_style());
    overall.set_prefix("series");
    overall.set_position(counts.done + counts.failed);
    if visible {
        overall.enable_steady_tick(std::time::Duration::from_millis(500));
    }
    let analysed = AtomicUsize::new(0);
    let worker = |w: usize| -> Result<()> {
        let name = format!("batch-{}-{w}", std::process::id());
        while let Some(job) = store.claim(&name)? {
            let bar = multi.insert_before(&overall, ProgressBar::new(0));
            let progress = BarProgress::new(bar);
            progress.bar().set_prefix(bar_name(&job.label));
            let p = placement(out, &job, deidentified);
            let outcome = run_job(
                &store,
                &job,
                &opts.analysis,
                &opts.output,
                classifier.as_ref(),
                &p,
                &progress,
            )?;
            progress.bar().finish_and_clear();
            multi.remove(progress.bar());
            analysed.fetch_add(1, Ordering::Relaxed);
            overall.inc(1);
            let line = match &outcome {
                Outcome::Done { summary: s, .. } => format!(
                    "done    {:<12} {:.3}  Lung-RADS {:<3} {}",
                    s.priority,
                    s.score,
                    s.lung_rads.as_deref().unwrap_or("-"),
                    job.label
                ),
                Outcome::Failed { message, .. } => format!("FAILED  {}: {message}", job.label),
            };
            say(&multi, visible, line);
        }
        Ok(())
    };
    pool.install(|| (0..threads).into_par_iter().try_for_each(worker))?;
    overall.finish_and_clear();
    summary.analysed_now = analysed.into_inner();

    // 4. Worklist.
    let jobs = store.list(None)?;
    worklist::write(out, &worklist::rows(&jobs, Some(out)))?;
    summary.counts = store.counts()?;
    summary.failures = jobs
        .iter()
        .filter(|j| j.error.is_some())
        .map(|j| (j.label.clone(), j.error.clone().unwrap_or_default()))
        .collect();
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// A bar prefix from a label `<source> [<series>]`: the source (shortened)
/// and the end of the series UID.
fn bar_name(label: &str) -> String {
    match label.rsplit_once(" [") {
        Some((src, series)) => {
            let series = series.trim_end_matches(']');
            format!("{} {}", short(src, 14), short(series, 9))
        }
        None => short(label, 24),
    }
}

/// The last `n` characters of `s` (labels end with what differs).
fn short(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(count - (n - 1)).collect();
        format!("…{tail}")
    }
}
