//! The `synchub` command line.

mod auth;
mod check;
mod cli;
mod commands;
mod conflicts;
mod console;
mod contacts;
mod daemon;
mod dead_letters;
mod demo;
#[cfg(test)]
mod docs_check;
#[cfg(test)]
mod docs_guides;
mod export;
mod merges;
mod migrate;
mod outbox;
mod output;
mod pipeline;
mod registry;
mod review;
mod runs;
mod scopes;
mod status;
mod webhook_register;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    output::quiet_on_closed_pipe();
    let args = cli::Cli::parse();
    init_tracing(args.verbose, args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::dispatch(args)) {
        Ok(code) => code,
        // `synchub status | head -1`: the reader has what it wanted.
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", synchub_http::secret::redact(&format_chain(&e)));
            ExitCode::from(1)
        }
    }
}

/// One line: each cause once, joined by ": ".
fn format_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn init_tracing(verbose: u8, format: cli::LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYNCHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Every log line passes the redactor (registered secrets, credentials in
    // URLs, `password=…`); colour only on a terminal.
    if format == cli::LogFormat::Json {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .with_writer(synchub_http::secret::RedactingMakeWriter::new(
                std::io::stderr,
            ))
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(synchub_http::secret::RedactingMakeWriter::new(
            std::io::stderr,
        ))
        .try_init();
}
