//! The command line, exactly as shared/DESIGN.md fixes it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The store used when no `--database-url` is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://synchub.db";

/// synchub: keeps one CRM contact-and-order model in step with the systems a
/// business already runs.
/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

#[derive(Debug, Parser)]
#[command(name = "synchub", version, about)]
pub struct Cli {
    /// Database URL: sqlite://PATH (embedded, default) or postgres://USER@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "SYNCHUB_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL
    )]
    pub database_url: String,
    /// More log output on stderr (-v info, -vv debug); SYNCHUB_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines on stderr as `text` (default) or `json` (one object a line).
    #[arg(long, global = true, env = "SYNCHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    /// Validate pipeline files and contact every connection (DNS, TLS, credentials) with a short deadline; one line per connection.
    Check {
        /// A pipeline file, or a folder of them (every *.toml).
        path: PathBuf,
        /// Seconds each connection may take to answer.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=300))]
        timeout_seconds: u64,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: crate::output::Format,
        /// Subscribe each shop connection that passed to the webhook topics
        /// the daemon syncs (Shopify, WooCommerce); existing ones are kept.
        #[arg(long, requires = "public_url")]
        register_webhooks: bool,
        /// The daemon's public HTTPS address; deliveries go to
        /// URL/webhooks/<connection name>. Alone, says which topics are
        /// not subscribed there yet.
        #[arg(long, env = "SYNCHUB_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
    },
    /// Run every pipeline of a folder unattended, on webhooks and timers.
    Daemon {
        /// Folder of pipeline files (every *.toml in it).
        #[arg(long, env = "SYNCHUB_CONFIG_DIR", default_value = ".")]
        config_dir: PathBuf,
        /// Address for webhooks, health, metrics and the ops console.
        #[arg(long, env = "SYNCHUB_LISTEN", default_value = "127.0.0.1:8750")]
        listen: String,
        /// The address people reach the console at; an https:// one marks
        /// its session cookie Secure.
        #[arg(long, env = "SYNCHUB_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Serve the ops console alone (customers, work queues, pipelines) for a look at any store.
    Console {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8751")]
        listen: String,
        /// The store (instead of --database-url).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Folder of pipeline files, to replay dead letters through them.
        #[arg(long, env = "SYNCHUB_CONFIG_DIR")]
        config_dir: Option<PathBuf>,
        /// The address people reach the console at; an https:// one marks
        /// its session cookie Secure.
        #[arg(long, env = "SYNCHUB_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// The console's users: add one (or give one a new role and password), list them.
    Users {
        #[command(subcommand)]
        action: crate::console::UsersAction,
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
    /// The people in the CRM: list and search them, show one with everything.
    Contacts {
        #[command(subcommand)]
        action: crate::contacts::ContactsAction,
    },
    /// Stream a whole relation out of the store (bounded memory).
    Export {
        /// What to export.
        #[arg(value_enum)]
        what: crate::export::ExportWhat,
        /// Output format.
        #[arg(long, value_enum)]
        format: crate::export::ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Source items that could not be mapped or validated: list, show, replay.
    DeadLetters {
        #[command(subcommand)]
        action: crate::dead_letters::DeadLetterAction,
    },
    /// Pushes the targets refused or that keep failing.
    Outbox {
        #[command(subcommand)]
        action: crate::outbox::OutboxAction,
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
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: crate::output::Format,
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
