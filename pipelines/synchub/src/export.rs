//! `synchub export contacts|orders --format csv|jsonl [--output FILE]`: a
//! whole relation out of the store, read in keyset pages of a fixed size
//! and written as it is read, so memory stays flat however large the store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use serde_json::{Map, Value};
use synchub_store::relations::Relation;
use synchub_store::Store;

/// Rows read per query.
pub const EXPORT_PAGE: i64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportWhat {
    /// Live contacts (the golden records).
    Contacts,
    /// Live orders, each with the contact it belongs to.
    Orders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A header row, then one row per record; lists as JSON text.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Writes the relation to `out`; returns the number of rows written.
pub async fn export_to(
    store: &Store,
    what: ExportWhat,
    format: ExportFormat,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let relation = match what {
        ExportWhat::Contacts => Relation::Contacts,
        ExportWhat::Orders => Relation::Orders,
    };
    let columns = relation.columns();
    let written = match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(columns.iter().map(|c| c.name))?;
            let n = pages(store, relation, |values| {
                w.write_record(values.iter().map(|v| v.as_deref().unwrap_or("")))?;
                Ok(())
            })
            .await?;
            w.flush()?;
            n
        }
        ExportFormat::Jsonl => {
            let n = pages(store, relation, |values| {
                let mut obj = Map::new();
                for (c, v) in columns.iter().zip(values) {
                    let value = match v {
                        None => Value::Null,
                        Some(text) if c.json => serde_json::from_str(text)
                            .unwrap_or_else(|_| Value::String(text.clone())),
                        Some(text) => Value::String(text.clone()),
                    };
                    obj.insert(c.name.to_string(), value);
                }
                serde_json::to_writer(&mut *out, &Value::Object(obj))?;
                out.write_all(b"\n")?;
                Ok(())
            })
            .await?;
            out.flush()?;
            n
        }
    };
    Ok(written)
}

/// Feeds every row of `relation` to `row`, one keyset page in memory at a time.
async fn pages(
    store: &Store,
    relation: Relation,
    mut row: impl FnMut(&[Option<String>]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut after: Option<String> = None;
    let mut written = 0u64;
    loop {
        let page = store
            .relation_page(relation, after.as_deref(), EXPORT_PAGE)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, values) in &page {
            row(values)?;
            written += 1;
        }
        if i64::try_from(page.len()).unwrap_or(i64::MAX) < EXPORT_PAGE {
            break;
        }
    }
    Ok(written)
}

pub async fn run(
    store: &Store,
    what: ExportWhat,
    format: ExportFormat,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let n = match &output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create export file {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            export_to(store, what, format, &mut w)
                .await
                .with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout());
            match export_to(store, what, format, &mut w).await {
                Ok(n) => n,
                Err(e) => {
                    // `synchub export … | head`: the reader has what it wanted.
                    if crate::output::is_closed_pipe(&e) {
                        return Ok(ExitCode::SUCCESS);
                    }
                    return Err(e);
                }
            }
        }
    };
    if let Some(path) = output {
        eprintln!("exported {n} rows to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
