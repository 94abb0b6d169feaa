//! `synchub demo`: run the bundled example pipelines against built-in
//! sample sources into the configured database and explain what happened.

use std::process::ExitCode;

use anyhow::Context;
use synchub_core::ObjectKind;

use crate::commands::{build_engine, open_store, run_engine};
use crate::pipeline;

const CSV_PIPELINE: &str = include_str!("../../examples/csv-contacts.toml");
const CSV_DATA: &str = include_str!("../../examples/data/contacts.csv");

pub async fn run(db: &str) -> anyhow::Result<ExitCode> {
    println!("synchub demo: a legacy contacts export (Hong Kong, Taiwan, mainland China and more)");
    println!(
        "is pulled into the CRM at {}.\n",
        synchub_store::redact_url(db)
    );

    let dir = tempfile::tempdir().context("cannot create a temporary folder for the demo files")?;
    std::fs::create_dir_all(dir.path().join("data"))?;
    std::fs::write(dir.path().join("csv-contacts.toml"), CSV_PIPELINE)?;
    std::fs::write(dir.path().join("data/contacts.csv"), CSV_DATA)?;

    let store = open_store(db).await?;
    let loaded = pipeline::load(&dir.path().join("csv-contacts.toml"))?;
    let engine = build_engine(store.clone(), &loaded)?;

    println!("1. First run: every row is read, normalized (E.164 phones, NFKC names, lower-case");
    println!("   emails), matched against the CRM by email and phone+name, and written.");
    let first = run_engine(&engine, false, false).await?;
    print!("{}", indent(&first.to_table()));
    let t = first.total();
    println!(
        "   {} rows read: {} new contacts, {} rows recognised as someone already in the CRM,",
        t.read, t.created, t.merged
    );
    println!(
        "   {} unchanged, {} rows kept as dead letters with their payload and reason.\n",
        t.unchanged, t.dead_lettered
    );

    println!(
        "2. Second run: the stored cursor says the file was read to its end, so nothing is read."
    );
    let second = run_engine(&engine, false, false).await?;
    print!("{}", indent(&second.to_table()));
    println!();

    println!("3. Full refresh: everything is read again and nothing changes (already in step).");
    let third = run_engine(&engine, true, false).await?;
    print!("{}", indent(&third.to_table()));
    println!("   writes: {}\n", third.writes());

    println!("4. A merged contact — two rows of the export, one person:");
    for rec in store.records(ObjectKind::Contact, false).await? {
        let links = store.links_of(&rec.id).await?;
        if links.len() > 1 {
            let ids: Vec<String> = links
                .iter()
                .map(|l| format!("{}:{}", l.connection, l.external_id))
                .collect();
            println!("   {} ← {}", rec.id, ids.join(" + "));
            println!("   {}", serde_json::to_string(&rec.record)?);
            break;
        }
    }
    println!("\n5. Dead letters (nothing is dropped silently):");
    for d in store.dead_letters(10).await? {
        println!(
            "   {}: {}",
            d.location.or(d.external_id).unwrap_or_default(),
            d.reason
        );
    }
    println!("\nNext: `synchub status`, `synchub conflicts list`, or run your own pipeline with");
    println!("`synchub run pipelines/examples/csv-contacts.toml --once --report json`.");
    Ok(ExitCode::SUCCESS)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("   {l}\n")).collect()
}
