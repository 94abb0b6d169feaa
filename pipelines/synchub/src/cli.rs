//! The command line, exactly as shared/DESIGN.md fixes it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// synchub: keeps one CRM contact-and-order model in step with the systems a
/// business already runs.
#[derive(Debug, Parser)]
#[command(name = "synchub", version, about)]
pub struct Cli {
    /// Database URL: sqlite://PATH (embedded, default) or postgres://USER@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "SYNCHUB_DATABASE_URL",
        default_value = "sqlite://synchub.db"
    )]
    pub database_url: String,
    /// More log output on stderr (-v info, -vv debug); SYNCHUB_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the built-in sample sources, run the example pipelines into the database, print a summary.
    Demo,
    /// Run a pipeline file.
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Run one round and exit (otherwise repeat on the pipeline's schedule, if it has one).
        #[arg(long)]
        once: bool,
        /// Ignore stored cursors and read everything again.
        #[arg(long)]
        full_refresh: bool,
        /// Apply nothing: every page is rolled back and nothing is pushed.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object at the end.
        #[arg(long, value_enum)]
        report: Option<ReportFormat>,
    },
    /// Run every pipeline of a folder unattended, on webhooks and timers.
    Daemon {
        /// Folder of pipeline files (every *.toml in it).
        #[arg(long, env = "SYNCHUB_CONFIG_DIR", default_value = ".")]
        config_dir: PathBuf,
        /// Address for webhooks, health and metrics.
        #[arg(long, env = "SYNCHUB_LISTEN", default_value = "127.0.0.1:8750")]
        listen: String,
    },
    /// One-shot migration from a legacy CRM export or database.
    Migrate {
        /// salesforce, hubspot, zoho, pipedrive, csv, suitecrm or vtiger.
        kind: String,
        /// Export folder or file, or mysql:// URL.
        path_or_url: String,
        /// Report what would happen; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Continue after an interrupted run.
        #[arg(long)]
        resume: bool,
        /// Mapping file (TOML).
        #[arg(long)]
        map: Option<PathBuf>,
        /// Input encoding.
        #[arg(long, value_enum, default_value = "auto")]
        encoding: Encoding,
        /// Rows per transaction (each page commits with its cursor; --resume continues after the last).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        page_size: u64,
    },
    /// Cluster the people of CSV files: which rows are the same person.
    Dedupe {
        /// Input CSV files.
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// Labels of the inputs, in order (default: file stem).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// COLUMN=FIELD mappings.
        #[arg(long = "map")]
        maps: Vec<String>,
        /// Default phone region (ISO 3166 alpha-2).
        #[arg(long)]
        region: Option<String>,
        /// Output CSV: source,source_id,cluster_id.
        #[arg(long)]
        output: PathBuf,
    },
    /// Review and resolve same-field conflicts.
    Conflicts {
        #[command(subcommand)]
        action: ConflictAction,
    },
    /// Contact merge history; undo a merge.
    Merges {
        #[command(subcommand)]
        action: crate::merges::MergeAction,
    },
    /// Pairs of contacts the matcher could not decide: list, inspect, merge or keep apart.
    Review {
        #[command(subcommand)]
        action: ReviewAction,
    },
    /// Streams, cursors, counts, outbox, dead letters, open conflicts and recent runs.
    Status {
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: crate::output::Format,
    },
    /// Run history: list the latest runs, show one.
    Runs {
        #[command(subcommand)]
        action: crate::runs::RunsAction,
    },
    /// OAuth2 authorization for a connector instance.
    Auth {
        /// Connector instance name (a connection with `[connections.config.oauth]`).
        instance: String,
        /// Folder of pipeline files to find the instance in.
        #[arg(long, env = "SYNCHUB_CONFIG_DIR", default_value = ".")]
        config_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConflictAction {
    /// Open conflicts: person, field, systems, both values and age.
    List {
        /// Include resolved conflicts.
        #[arg(long)]
        all: bool,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: crate::output::Format,
    },
    /// One conflict with base, local and remote values.
    Show {
        /// Conflict id.
        id: i64,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: crate::output::Format,
    },
    /// Resolve a conflict, or every open conflict on a field (`--field`);
    /// the result is pushed to every linked system.
    Resolve {
        /// Conflict id; leave out and give --field to resolve many.
        id: Option<i64>,
        /// `local`, `remote`, `newest` (the side changed last), or for one
        /// conflict a JSON value (a bare word is taken as a string).
        #[arg(long)]
        take: String,
        /// Resolve every open conflict on this field (e.g. `company`, `custom.vip`).
        #[arg(long)]
        field: Option<String>,
        /// Only conflicts raised by this connection.
        #[arg(long, requires = "field")]
        source: Option<String>,
        /// Show what would be chosen; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewAction {
    /// Open pairs, most likely first.
    List {
        /// Include decided pairs.
        #[arg(long)]
        all: bool,
    },
    /// Both contacts and the per-field evidence.
    Show {
        /// Review id.
        id: i64,
    },
    /// Merge the pair (undoable; the golden record goes to every linked system).
    Merge {
        /// Review id.
        id: i64,
    },
    /// Keep the two apart; the pair is not queued again.
    KeepApart {
        /// Review id.
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    Auto,
    #[value(name = "utf-8")]
    Utf8,
    Big5,
    Gbk,
    #[value(name = "utf-16")]
    Utf16,
}
