//! `synchub conflicts list|show|resolve`: conflicts named by the person,
//! the field and the systems, values shown as JSON (never re-encoded), and
//! resolution one at a time or in bulk by field and source.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use synchub_core::Record;
use synchub_store::conflicts::Conflict;
use synchub_store::Store;

use crate::cli::ConflictAction;
use crate::output::{self, emit, emit_json, short, Format, Table};

pub async fn command(store: &Store, action: ConflictAction) -> anyhow::Result<ExitCode> {
    match action {
        ConflictAction::List { all, format } => list(store, all, format).await,
        ConflictAction::Show { id, format } => show(store, id, format).await,
        ConflictAction::Resolve {
            id,
            take,
            field,
            source,
            dry_run,
        } => match id {
            Some(id) => {
                if field.is_some() || source.is_some() {
                    bail!("give a conflict id or --field/--source, not both");
                }
                resolve_one(store, id, &take, dry_run).await
            }
            None => {
                let Some(field) = field else {
                    bail!("name the conflict (synchub conflicts resolve ID --take …) or the field of many (--field F [--source S])");
                };
                resolve_many(store, &field, source.as_deref(), &take, dry_run).await
            }
        },
    }
}

/// The person (or other record) a conflict is about, for display.
async fn subject(store: &Store, c: &Conflict) -> anyhow::Result<String> {
    let record = store.record(&c.detail.crm_id).await?;
    let name = record.and_then(|r| match r.record {
        Record::Contact(contact) => contact.display_name(),
        Record::Company(company) => Some(company.name).filter(|n| !n.is_empty()),
        Record::Order(order) => order.number.map(|n| format!("order {n}")),
        Record::Invoice(invoice) => invoice.number.map(|n| format!("invoice {n}")),
        Record::Activity(activity) => activity.subject,
    });
    Ok(name.unwrap_or_else(|| format!("{} {}", c.detail.object, short_id(&c.detail.crm_id))))
}

fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

fn conflict_json(c: &Conflict, person: &str) -> Value {
    let d = &c.detail;
    json!({
        "id": c.id,
        "status": c.status,
        "person": person,
        "object": d.object.as_str(),
        "crm_id": d.crm_id,
        "field": d.field,
        "connection": d.connection,
        "external_id": d.external_id,
        "base": output::json_value(&d.base),
        "local": output::json_value(&d.local),
        "remote": output::json_value(&d.remote),
        "resolution": c.resolution.as_deref().map(output::json_value),
        "created_at": c.created_at,
        "age_seconds": output::age_seconds(&c.created_at),
    })
}

async fn list(store: &Store, all: bool, format: Format) -> anyhow::Result<ExitCode> {
    let list = store.conflicts(all).await?;
    let mut people = Vec::with_capacity(list.len());
    for c in &list {
        people.push(subject(store, c).await?);
    }
    if format == Format::Json {
        let docs: Vec<Value> = list
            .iter()
            .zip(&people)
            .map(|(c, p)| conflict_json(c, p))
            .collect();
        emit_json(&Value::Array(docs))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        emit(&format!("no {}conflicts\n", if all { "" } else { "open " }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["ID", "PERSON", "FIELD", "SYSTEMS", "CRM", "REMOTE", "AGE"];
    if all {
        header.insert(1, "STATUS");
    }
    let mut t = Table::new(&header);
    for (c, person) in list.iter().zip(&people) {
        let d = &c.detail;
        let mut row = vec![
            c.id.to_string(),
            output::truncate(person, 24),
            d.field.clone(),
            format!(
                "crm vs {} ({})",
                d.connection,
                output::truncate(&d.external_id, 16)
            ),
            short(&output::json_value(&d.local), 24),
            short(&output::json_value(&d.remote), 24),
            output::age(&c.created_at),
        ];
        if all {
            row.insert(1, c.status.clone());
        }
        t.row(row);
    }
    let mut out = t.render(0);
    out.push_str(
        "\nsynchub conflicts show ID for the values; synchub conflicts resolve ID --take local|remote|VALUE,\nor many at once: synchub conflicts resolve --field F --take local|remote|newest [--source S] [--dry-run]\n",
    );
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

async fn find(store: &Store, id: i64) -> anyhow::Result<Conflict> {
    store
        .conflict(id)
        .await?
        .ok_or_else(|| anyhow!("no conflict with id {id} (synchub conflicts list --all)"))
}

async fn show(store: &Store, id: i64, format: Format) -> anyhow::Result<ExitCode> {
    let c = find(store, id).await?;
    let person = subject(store, &c).await?;
    if format == Format::Json {
        emit_json(&conflict_json(&c, &person))?;
        return Ok(ExitCode::SUCCESS);
    }
    let d = &c.detail;
    let value = |text: &str| output::json_value(text).to_string();
    let mut out = format!(
        "conflict {} ({}), recorded {} ({} ago)\n\
         person:  {person} ({} {})\n\
         field:   {}\n\
         systems: crm vs {} (external id {})\n\
         base:    {}   (the last value both agreed on)\n\
         crm:     {}   (local)\n\
         remote:  {}   ({})\n",
        c.id,
        c.status,
        c.created_at,
        output::age(&c.created_at),
        d.object,
        d.crm_id,
        d.field,
        d.connection,
        d.external_id,
        value(&d.base),
        value(&d.local),
        value(&d.remote),
        d.connection,
    );
    match &c.resolution {
        Some(r) => out.push_str(&format!("resolved: {}\n", value(r))),
        None => out.push_str(&format!(
            "resolve: synchub conflicts resolve {} --take local|remote|newest|VALUE\n",
            c.id
        )),
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// What `--take` asks for.
enum Take {
    Local,
    Remote,
    Newest,
    Value(Value),
}

fn parse_take(take: &str) -> Take {
    match take {
        "local" => Take::Local,
        "remote" => Take::Remote,
        "newest" => Take::Newest,
        other => {
            Take::Value(serde_json::from_str(other).unwrap_or_else(|_| Value::String(other.into())))
        }
    }
}

/// The value `take` chooses for a conflict, or why it chooses none.
async fn choose(store: &Store, c: &Conflict, take: &Take) -> anyhow::Result<Result<Value, String>> {
    let d = &c.detail;
    Ok(match take {
        Take::Local => Ok(output::json_value(&d.local)),
        Take::Remote => Ok(output::json_value(&d.remote)),
        Take::Value(v) => Ok(v.clone()),
        Take::Newest => {
            let top = d.field.split('.').next().unwrap_or(&d.field);
            let local_at = store.record(&d.crm_id).await?.and_then(|r| {
                r.field_times
                    .get(&d.field)
                    .or(r.field_times.get(top))
                    .copied()
            });
            let remote_at = store
                .links_of(&d.crm_id)
                .await?
                .into_iter()
                .find(|l| l.connection == d.connection && l.external_id == d.external_id)
                .and_then(|l| l.remote_updated_at)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            match (local_at, remote_at) {
                (Some(l), Some(r)) if l > r => Ok(output::json_value(&d.local)),
                (Some(l), Some(r)) if r > l => Ok(output::json_value(&d.remote)),
                (Some(_), Some(_)) => Err("both sides changed at the same time".to_string()),
                (None, _) => Err("the CRM value has no change time".to_string()),
                (_, None) => Err(format!("{} gave no change time", d.connection)),
            }
        }
    })
}

async fn resolve_one(
    store: &Store,
    id: i64,
    take: &str,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let c = find(store, id).await?;
    if c.status != "open" {
        bail!("conflict {id} is already {}", c.status);
    }
    let chosen = match choose(store, &c, &parse_take(take)).await? {
        Ok(v) => v,
        Err(why) => {
            bail!("conflict {id}: cannot take the newest value: {why}; take local or remote")
        }
    };
    let d = &c.detail;
    if dry_run {
        emit(&format!(
            "would resolve conflict {id}: {}.{} = {chosen} (dry run: nothing written)\n",
            d.crm_id, d.field
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let version = synchub_engine::local::resolve_conflict(store, &c, chosen.clone())
        .await
        .with_context(|| format!("cannot resolve conflict {id}"))?;
    emit(&format!(
        "conflict {id} resolved: {}.{} = {chosen} (record version {version}); linked systems get it on the next run\n",
        d.crm_id, d.field
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn resolve_many(
    store: &Store,
    field: &str,
    source: Option<&str>,
    take: &str,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let take = match parse_take(take) {
        Take::Value(_) => bail!(
            "--take `{take}`: many conflicts are resolved with local, remote or newest; a value is given to one conflict at a time"
        ),
        t => t,
    };
    let open = store.conflicts(false).await?;
    let matching: Vec<&Conflict> = open
        .iter()
        .filter(|c| c.detail.field == field && source.is_none_or(|s| c.detail.connection == s))
        .collect();
    if matching.is_empty() {
        let fields: std::collections::BTreeSet<&str> =
            open.iter().map(|c| c.detail.field.as_str()).collect();
        let sources: std::collections::BTreeSet<&str> =
            open.iter().map(|c| c.detail.connection.as_str()).collect();
        bail!(
            "no open conflict on field `{field}`{} (open conflicts are on: {}; from: {})",
            source.map(|s| format!(" from `{s}`")).unwrap_or_default(),
            join_or_none(&fields),
            join_or_none(&sources)
        );
    }
    let mut out = String::new();
    let (mut resolved, mut skipped) = (0usize, 0usize);
    for c in matching {
        let person = subject(store, c).await?;
        let chosen = match choose(store, c, &take).await? {
            Ok(v) => v,
            Err(why) => {
                skipped += 1;
                out.push_str(&format!("  skipped {} ({person}): {why}\n", c.id));
                continue;
            }
        };
        if !dry_run {
            synchub_engine::local::resolve_conflict(store, c, chosen.clone())
                .await
                .with_context(|| format!("cannot resolve conflict {}", c.id))?;
        }
        resolved += 1;
        out.push_str(&format!(
            "  {} {} ({person}): {} = {}\n",
            if dry_run { "would resolve" } else { "resolved" },
            c.id,
            c.detail.field,
            short(&chosen, 60)
        ));
    }
    out.push_str(&format!(
        "{} {resolved} conflict(s), skipped {skipped}{}\n",
        if dry_run { "would resolve" } else { "resolved" },
        if dry_run {
            " (dry run: nothing written)"
        } else {
            "; linked systems get the values on the next run"
        }
    ));
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn join_or_none(set: &std::collections::BTreeSet<&str>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter().copied().collect::<Vec<_>>().join(", ")
    }
}
