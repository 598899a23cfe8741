//! `ct-triage`: the command-line entry point. A thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ct_triage_core::ingest::{IngestOptions, inspect};
use ct_triage_core::progress::NoProgress;
use ct_triage_native::input::gather;
use ct_triage_native::render::inspect_text;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            let mut opts = IngestOptions::default();
            opts.series = series;
            let mut report = inspect(&gathered.inputs(), &opts, &NoProgress)?;
            report.skipped.extend(gathered.unreadable.iter().cloned());
            if json {
                let s = serde_json::to_string_pretty(&report)
                    .map_err(|e| ct_triage_native::NativeError::Output(e.to_string()))?;
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
    }
}
