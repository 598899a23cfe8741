//! `ct-triage`: the command-line entry point. A thin layer over the library.
//!
//! Exit codes:
//! - `inspect`: 0 a volume loads, 1 no analysable volume, 2 error.
//! - `analyze`: 0 report written (conclusive), 3 report written but
//!   `inconclusive`, 1 no report (the input cannot be analysed), 2 usage,
//!   model or output error.
//! - `batch`: 0 every series analysed, 1 some series failed (see the
//!   worklist), 2 fatal error (nothing or not everything could be attempted).
//! - `serve`: 0 after Ctrl-C/SIGTERM, 2 configuration or start-up error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ct_triage_core::ingest::{IngestOptions, inspect};
use ct_triage_core::pipeline::{AnalysisOptions, PatientOverrides};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::report::Priority;
use ct_triage_native::NativeError;
use ct_triage_native::batch::{self, BatchOptions};
use ct_triage_native::config::ServerConfig;
use ct_triage_native::input::gather;
use ct_triage_native::model::{self, ModelChoice};
use ct_triage_native::output::{DeidKey, OutputOptions, write_analysis};
use ct_triage_native::progress::BarProgress;
use ct_triage_native::render::{candidates_text, inspect_text, report_text};
use ct_triage_native::runner::analyze_paths;
use ct_triage_native::server::{self, Server};
use indicatif::{ProgressBar, ProgressDrawTarget};

/// mimalloc keeps freed buffers for reuse instead of returning every large
/// activation buffer to the OS (glibc's default), which matters for the 3-D CNN.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// AI-assisted lung CT triage (research use only, not a medical device).
#[derive(Parser)]
#[command(name = "ct-triage", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List studies and series in the input, the selected series and its volume.
    Inspect {
        /// Folders (recursive), zip archives or files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Load this series (key or Series Instance UID) instead of the automatic choice.
        #[arg(long)]
        series: Option<String>,
    },
    /// Analyse one series: write DIR/report.json, DIR/key-images/*.png and the DICOM objects.
    Analyze(AnalyzeArgs),
    /// Analyse every study under ROOT in parallel, resumably; write a worklist.
    Batch(BatchArgs),
    /// Run the HTTP API and DICOM SCP.
    Serve(ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Sex {
    /// Female.
    F,
    /// Male.
    M,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Folders (recursive), zip archives or files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Print the report JSON to stdout (the summary then goes to stderr).
    #[arg(long)]
    json: bool,
    /// Model manifest (default: the built-in model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Analyse this series (key or Series Instance UID) instead of the automatic choice.
    #[arg(long)]
    series: Option<String>,
    /// Patient age in years (overrides DICOM).
    #[arg(long)]
    age: Option<f64>,
    /// Patient sex (overrides DICOM).
    #[arg(long, value_enum)]
    sex: Option<Sex>,
    /// Family history of lung cancer (Brock model).
    #[arg(long)]
    family_history: bool,
    /// Emphysema present (default: measured on the CT).
    #[arg(long)]
    emphysema: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// List every candidate (channel, position, scale, classifier outputs, why it
    /// was kept or dropped) in the summary and in report.json (`candidates.items`).
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    deid: DeidArgs,
}

/// De-identification of the result folder (`analyze`, `batch`).
#[derive(Args)]
struct DeidArgs {
    /// De-identify report.json and the DICOM objects (DICOM PS3.15 Basic
    /// Profile: UIDs replaced, patient ID pseudonymised, names, accession
    /// number and other identifying attributes removed, dates shifted) and
    /// write deidentification.json (what was done to each file).
    #[arg(long)]
    deidentify: bool,
    /// Secret key file for --deidentify, created with a random key if missing.
    /// The same key gives the same replacement UIDs, pseudonyms and date shift
    /// in every run. Default: a random key per run (analyze), OUT/deid.key (batch).
    #[arg(long, value_name = "FILE", requires = "deidentify")]
    deid_key: Option<PathBuf>,
}

impl DeidArgs {
    /// The output options; `default_key`: the key file used when none is given
    /// (`None`: a random key for this run only).
    fn output(&self, default_key: Option<PathBuf>) -> ct_triage_native::Result<OutputOptions> {
        if !self.deidentify {
            return Ok(OutputOptions::default());
        }
        let key = match self.deid_key.clone().or(default_key) {
            Some(path) => DeidKey::load_or_create(&path)?,
            None => DeidKey::random(),
        };
        Ok(OutputOptions {
            deidentify: Some(key),
        })
    }
}

#[derive(Args)]
struct BatchArgs {
    /// Folder of studies (sub-folders and zip archives).
    root: PathBuf,
    /// Output folder: jobs.sqlite, worklist.csv/json, series/<name>/.
    #[arg(long)]
    out: PathBuf,
    /// Series analysed in parallel (default: number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Model manifest (default: the built-in model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Only the series core selects per source (default: every eligible CT series).
    #[arg(long)]
    selected_only: bool,
    /// No progress bars (one line per finished series instead).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    deid: DeidArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file; command-line options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP listen address (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    /// API tokens, one `id:token` per line.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Job database, inputs and results (default ./ct-triage-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// DICOM C-STORE SCP port.
    #[arg(long)]
    dicom_port: Option<u16>,
    /// Our AE title (default CTTRIAGE).
    #[arg(long)]
    ae_title: Option<String>,
    /// Send results with C-STORE to HOST:PORT:AET, or with STOW-RS to a
    /// DICOMweb root http(s)://…/dicom-web.
    #[arg(long)]
    forward_to: Option<String>,
    /// Also forward the received instances (inline routing).
    #[arg(long)]
    forward_inputs: bool,
    /// A DICOMweb root jobs may name a study on (POST /v1/studies with JSON);
    /// repeat for several. Default none.
    #[arg(long = "dicomweb-source")]
    dicomweb_sources: Vec<String>,
    /// Seconds without a new instance before a DICOM series is analysed (default 10).
    #[arg(long)]
    quiet_seconds: Option<f64>,
    /// Analyses run at once (default 1).
    #[arg(long)]
    workers: Option<usize>,
    /// Model manifest (default: the built-in model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// HTTPS certificate chain (PEM); with --tls-key the API is served over TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// HTTPS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// DICOM over TLS (PS3.15 Annex B) with the --tls-cert/--tls-key pair.
    #[arg(long)]
    dicom_tls: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ct-triage: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> ct_triage_native::Result<ExitCode> {
    match cli.command {
        Command::Inspect {
            paths,
            json,
            series,
        } => {
            let gathered = gather(&paths)?;
            let opts = IngestOptions {
                series,
                ..IngestOptions::default()
            };
            let mut report = inspect(&gathered.inputs(), &opts, &NoProgress)?;
            report.skipped.extend(gathered.unreadable.iter().cloned());
            if json {
                let s = serde_json::to_string_pretty(&report)
                    .map_err(|e| NativeError::Output(e.to_string()))?;
                println!("{s}");
            } else {
                print!("{}", inspect_text(&report));
            }
            Ok(if report.volume.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Analyze(a) => analyze(a),
        Command::Batch(b) => {
            let classifier = model::load(&ModelChoice::from_arg(b.model))?;
            let mut opts = BatchOptions {
                selected_only: b.selected_only,
                progress: !b.quiet,
                output: b.deid.output(Some(b.out.join("deid.key")))?,
                ..BatchOptions::default()
            };
            if let Some(j) = b.jobs {
                opts.jobs = j.max(1);
            }
            let s = batch::run(&b.root, &b.out, classifier, &opts)?;
            eprintln!(
                "{} series: {} done, {} failed ({} analysed in this run, {} adopted, {} resumed) in {:.1} s\nworklist: {}",
                s.counts.total(),
                s.counts.done,
                s.counts.failed,
                s.analysed_now,
                s.adopted,
                s.requeued,
                s.seconds,
                b.out.join("worklist.csv").display()
            );
            for (label, why) in &s.failures {
                eprintln!("  failed: {label}: {why}");
            }
            Ok(if s.counts.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Serve(a) => serve(a),
    }
}

fn analyze(a: AnalyzeArgs) -> ct_triage_native::Result<ExitCode> {
    let output = a.deid.output(None)?;
    let classifier = model::load(&ModelChoice::from_arg(a.model))?;
    let mut opts = AnalysisOptions {
        patient: PatientOverrides {
            age_years: a.age,
            female: a.sex.map(|s| matches!(s, Sex::F)),
            family_history: a.family_history.then_some(true),
            emphysema: a.emphysema.then_some(true),
        },
        explain: a.explain,
        ..AnalysisOptions::default()
    };
    opts.ingest.series = a.series;
    let bar = if a.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    };
    let progress = BarProgress::new(bar);
    progress.bar().set_prefix("analysing");
    let (analysis, _) = match analyze_paths(&a.paths, &opts, classifier.as_ref(), &progress) {
        Ok(r) => r,
        Err(e @ (NativeError::Core(_) | NativeError::Input(_) | NativeError::Panic(_))) => {
            progress.bar().finish_and_clear();
            eprintln!("ct-triage: cannot analyse: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e),
    };
    progress.bar().finish_and_clear();
    let written = write_analysis(&a.out, &analysis, &output)?;
    let report = written.report_of(&analysis);
    let summary = format!(
        "{}{}\nWrote {}{} and {} key image(s)\n",
        report_text(report),
        candidates_text(report),
        written.report.display(),
        written
            .deidentification
            .as_ref()
            .map(|p| format!(" (de-identified, see {})", p.display()))
            .unwrap_or_default(),
        written.key_images.len()
    );
    if a.json {
        println!("{}", report.to_json());
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    Ok(
        if analysis.report.exam.triage_priority == Priority::Inconclusive {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn serve(a: ServeArgs) -> ct_triage_native::Result<ExitCode> {
    let mut cfg = match &a.config {
        Some(p) => ServerConfig::from_file(p)?,
        None => ServerConfig::default(),
    };
    if let Some(v) = a.listen {
        cfg.listen = v;
    }
    if let Some(v) = a.token_file {
        cfg.token_file = Some(v);
    }
    if let Some(v) = a.data_dir {
        cfg.data_dir = v;
    }
    if let Some(v) = a.dicom_port {
        cfg.dicom_port = Some(v);
    }
    if let Some(v) = a.ae_title {
        cfg.ae_title = v;
    }
    if let Some(v) = a.forward_to {
        cfg.forward_to = Some(v);
    }
    if a.forward_inputs {
        cfg.forward_inputs = true;
    }
    if !a.dicomweb_sources.is_empty() {
        cfg.dicomweb_sources = a.dicomweb_sources;
    }
    if let Some(v) = a.quiet_seconds {
        cfg.quiet_seconds = v;
    }
    if let Some(v) = a.workers {
        cfg.workers = v;
    }
    if let Some(v) = a.model {
        cfg.model = Some(v);
    }
    if let Some(v) = a.tls_cert {
        cfg.tls_cert = Some(v);
    }
    if let Some(v) = a.tls_key {
        cfg.tls_key = Some(v);
    }
    if a.dicom_tls {
        cfg.dicom_tls = true;
    }
    cfg.validate()?;
    let classifier = model::load(&ModelChoice::from_arg(cfg.model.clone()))?;
    let s = Server::open(cfg, classifier)?;
    server::run(s)?;
    Ok(ExitCode::SUCCESS)
}
