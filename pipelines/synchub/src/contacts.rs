//! `synchub contacts list [--search TEXT]` and `synchub contacts show
//! ID|EMAIL|PHONE|NAME`: the 360° customer from the command line. A person
//! is found by CRM id, by any email, by a phone written any way (`0912-345-678`,
//! `+886 912 345 678`: normalized to E.164 as the sync engine does), or by
//! name in any script (`陳大文`, `陳 大文`, `Tai Man Chan`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use serde_json::{json, Map, Value};
use synchub_store::relations::{ContactSearch, ContactSource, ContactSummary};
use synchub_store::Store;

use crate::output::{emit, emit_json, short, Format, Table};

#[derive(Debug, Subcommand)]
pub enum ContactsAction {
    /// Live contacts, by name; narrowed by --search.
    List {
        /// Name (any script, any part), email, phone (any format) or CRM id.
        #[arg(long)]
        search: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Region for phone numbers written without a country code
        /// (ISO 3166 alpha-2; TW, HK and CN are always tried).
        #[arg(long)]
        region: Option<String>,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One person: the golden record, each field in each linked system,
    /// merge history, and orders, invoices and activities on one timeline.
    Show {
        /// CRM id, email, phone (any format) or name.
        who: String,
        /// Region for phone numbers written without a country code.
        #[arg(long)]
        region: Option<String>,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Regions the customers behind synchub mostly write national numbers in.
const USUAL_REGIONS: &[&str] = &["TW", "HK", "CN"];

/// The exact lookups `text` can stand for: a CRM id, an email key, the
/// phone keys of every region it parses in.
pub fn exact_search(text: &str, region: Option<&str>) -> ContactSearch {
    let text = text.trim();
    let mut search = ContactSearch {
        ids: vec![text.to_string()],
        ..ContactSearch::default()
    };
    if text.contains('@') {
        if let Some(e) = synchub_identity::normalize_email(text) {
            search.keys.push(format!("email:{e}"));
        }
    }
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let phone_like = text
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().#/".contains(c) || c.is_whitespace());
    if digits >= 6 && phone_like {
        let regions = std::iter::once(None)
            .chain(region.map(Some))
            .chain(USUAL_REGIONS.iter().map(|r| Some(*r)));
        for r in regions {
            if let Some(p) = synchub_identity::normalize_phone(text, r) {
                let key = format!("phone:{p}");
                if !search.keys.contains(&key) {
                    search.keys.push(key);
                }
            }
        }
    }
    search
}

/// Substring patterns for a name or part of an email.
fn pattern_search(text: &str) -> ContactSearch {
    let text = text.trim();
    let mut patterns = vec![text.to_string()];
    let folded = synchub_identity::normalize_name(text);
    if !folded.is_empty() && folded != text.to_lowercase() {
        patterns.push(folded);
    }
    ContactSearch {
        patterns,
        ..ContactSearch::default()
    }
}

/// Contacts `text` names: exact matches (id, email, phone) when there are
/// any, else name and email substrings.
pub async fn find(
    store: &Store,
    text: &str,
    region: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<ContactSummary>> {
    let exact = store
        .find_contacts(&exact_search(text, region), limit)
        .await?;
    if !exact.is_empty() {
        return Ok(exact);
    }
    // The id of a contact merged into another names the survivor.
    if let Some(live) = store.live_contact_id(text.trim()).await? {
        let search = ContactSearch {
            ids: vec![live],
            ..ContactSearch::default()
        };
        return Ok(store.find_contacts(&search, limit).await?);
    }
    Ok(store.find_contacts(&pattern_search(text), limit).await?)
}

pub async fn command(store: &Store, action: ContactsAction) -> anyhow::Result<ExitCode> {
    match action {
        ContactsAction::List {
            search,
            limit,
            region,
            format,
        } => {
            if limit < 1 {
                bail!("--limit must be at least 1 (got {limit})");
            }
            let rows = match search.as_deref() {
                Some(text) => find(store, text, region.as_deref(), limit).await?,
                None => {
                    store
                        .find_contacts(&ContactSearch::default(), limit)
                        .await?
                }
            };
            list(&rows, format)?;
        }
        ContactsAction::Show {
            who,
            region,
            format,
        } => {
            let found = find(store, &who, region.as_deref(), 20).await?;
            let one = match found.as_slice() {
                [] => bail!(
                    "no contact matches `{who}` (by id, email, phone or name; try `synchub contacts list --search`)"
                ),
                [one] => one.clone(),
                many => {
                    let mut t = Table::new(&["ID", "NAME", "EMAIL", "PHONE"]);
                    for c in many {
                        t.row(vec![
                            c.id.clone(),
                            c.name.clone().unwrap_or_default(),
                            c.email.clone().unwrap_or_default(),
                            c.phone.clone().unwrap_or_default(),
                        ]);
                    }
                    eprint!("{}", t.render(0));
                    bail!(
                        "{} contacts match `{who}`; name one by its id",
                        many.len()
                    );
                }
            };
            let view = view_of(store, &one.id).await?;
            match format {
                Format::Json => emit_json(&view)?,
                Format::Table => emit(&render(&view))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(rows: &[ContactSummary], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => emit_json(&Value::Array(
            rows.iter()
                .map(|c| {
                    json!({
                        "id": c.id, "name": c.name, "email": c.email, "phone": c.phone,
                        "company": c.company, "updated_at": c.updated_at,
                    })
                })
                .collect(),
        )),
        Format::Table => {
            if rows.is_empty() {
                return emit("no contacts\n");
            }
            let mut t = Table::new(&["ID", "NAME", "EMAIL", "PHONE", "COMPANY"]);
            for c in rows {
                t.row(vec![
                    c.id.clone(),
                    c.name.clone().unwrap_or_default(),
                    c.email.clone().unwrap_or_default(),
                    c.phone.clone().unwrap_or_default(),
                    c.company.clone().unwrap_or_default(),
                ]);
            }
            emit(&t.render(0))
        }
    }
}

fn source_json(s: &ContactSource) -> Value {
    json!({
        "system": s.system,
        "external_id": s.external_id,
        "last_synced_at": s.last_synced_at,
        "remote_updated_at": s.remote_updated_at,
        "deleted": s.deleted,
        "fields": s.snapshot,
    })
}

/// Everything `contacts show` prints, as one JSON document.
async fn view_of(store: &Store, id: &str) -> anyhow::Result<Value> {
    let rec = store
        .record(id)
        .await?
        .ok_or_else(|| anyhow!("contact {id} vanished while it was read"))?;
    let sources = store.contact_sources(id).await?;
    let timeline = store.contact_timeline(id).await?;
    let merges = store.contact_merges(id).await?;
    let golden = rec.record.to_fields();

    // Per field: the golden value with its change time, and each linked
    // system's value with the time that system last changed or synced it.
    let mut names: Vec<String> = golden.keys().cloned().collect();
    for s in &sources {
        names.extend(s.snapshot.iter().flat_map(|m| m.keys().cloned()));
    }
    names.sort();
    names.dedup();
    let mut fields = Map::new();
    for name in names {
        let mut systems = Map::new();
        for s in &sources {
            let value = s.snapshot.as_ref().and_then(|m| m.get(&name)).cloned();
            systems.insert(
                format!("{}:{}", s.system, s.external_id),
                json!({
                    "value": value,
                    "at": s.remote_updated_at.clone().unwrap_or_else(|| s.last_synced_at.clone()),
                }),
            );
        }
        fields.insert(
            name.clone(),
            json!({
                "value": golden.get(&name),
                "changed_at": rec.field_times.get(&name).map(|t| t.to_rfc3339()),
                "systems": systems,
            }),
        );
    }
    let merges: Vec<Value> = merges
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "survivor": m.detail.survivor,
                "loser": m.detail.loser,
                "evidence": m.detail.evidence,
                "merged_at": m.merged_at,
                "undone_at": m.undone_at,
            })
        })
        .collect();
    let timeline: Vec<Value> = timeline
        .iter()
        .map(|t| {
            json!({
                "at": t.at, "kind": t.kind, "id": t.record_id, "title": t.title,
                "status": t.status, "amount": t.amount, "currency": t.currency,
            })
        })
        .collect();
    Ok(json!({
        "id": rec.id,
        "version": rec.version,
        "updated_at": rec.updated_at,
        "record": golden,
        "fields": fields,
        "sources": sources.iter().map(source_json).collect::<Vec<_>>(),
        "merges": merges,
        "timeline": timeline,
    }))
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => short(other, 60),
    }
}

fn render(view: &Value) -> String {
    let mut out = String::new();
    let name = view["record"]["full_name"]
        .as_str()
        .or_else(|| view["record"]["emails"][0].as_str())
        .unwrap_or("(no name)");
    out.push_str(&format!(
        "{name}  {}  (version {}, changed {})\n\n",
        text_of(view.get("id")),
        text_of(view.get("version")),
        text_of(view.get("updated_at"))
    ));

    let sources: Vec<String> = view["sources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    format!(
                        "{}:{}",
                        text_of(s.get("system")),
                        text_of(s.get("external_id"))
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut header = vec!["FIELD".to_string(), "GOLDEN RECORD".to_string()];
    header.extend(sources.iter().cloned());
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header_refs);
    let empty = Map::new();
    for (field, f) in view["fields"].as_object().unwrap_or(&empty) {
        let mut row = vec![field.clone(), text_of(f.get("value"))];
        for s in &sources {
            let cell = &f["systems"][s];
            let value = text_of(cell.get("value"));
            row.push(if value.is_empty() {
                String::new()
            } else {
                format!("{value}  ({})", text_of(cell.get("at")))
            });
        }
        t.row(row);
    }
    out.push_str(&t.render(2));

    out.push_str("\nlinked systems:\n");
    let mut t = Table::new(&[
        "SYSTEM",
        "ID THERE",
        "LAST SYNCED",
        "CHANGED THERE",
        "DELETED",
    ]);
    for s in view["sources"].as_array().unwrap_or(&Vec::new()) {
        t.row(vec![
            text_of(s.get("system")),
            text_of(s.get("external_id")),
            text_of(s.get("last_synced_at")),
            text_of(s.get("remote_updated_at")),
            text_of(s.get("deleted")),
        ]);
    }
    out.push_str(&if t.is_empty() {
        "  none\n".to_string()
    } else {
        t.render(2)
    });

    out.push_str("\nmerge history:\n");
    let mut t = Table::new(&["MERGE", "WHEN", "SURVIVOR", "MERGED IN", "UNDONE"]);
    for m in view["merges"].as_array().unwrap_or(&Vec::new()) {
        t.row(vec![
            text_of(m.get("id")),
            text_of(m.get("merged_at")),
            text_of(m.get("survivor")),
            text_of(m.get("loser")),
            text_of(m.get("undone_at")),
        ]);
    }
    out.push_str(&if t.is_empty() {
        "  none\n".to_string()
    } else {
        t.render(2)
    });

    out.push_str("\ntimeline:\n");
    let mut t = Table::new(&["WHEN", "KIND", "WHAT", "STATUS", "AMOUNT", "ID"]);
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for e in view["timeline"].as_array().unwrap_or(&Vec::new()) {
        *totals.entry(text_of(e.get("kind"))).or_default() += 1;
        let amount = text_of(e.get("amount"));
        t.row(vec![
            text_of(e.get("at")),
            text_of(e.get("kind")),
            text_of(e.get("title")),
            text_of(e.get("status")),
            if amount.is_empty() {
                amount
            } else {
                format!("{amount} {}", text_of(e.get("currency")))
            },
            text_of(e.get("id")),
        ]);
    }
    out.push_str(&if t.is_empty() {
        "  nothing yet\n".to_string()
    } else {
        t.render(2)
    });
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_taiwanese_mobile_written_nationally_finds_its_e164_key() {
        let s = exact_search("0912-345-678", None);
        assert!(s.keys.contains(&"phone:+886912345678".to_string()), "{s:?}");
        let s = exact_search("+886912345678", None);
        assert_eq!(s.keys, vec!["phone:+886912345678".to_string()]);
    }

    #[test]
    fn names_and_emails_make_the_right_lookups() {
        let s = exact_search("陳大文", None);
        assert!(s.keys.is_empty(), "{s:?}");
        let s = exact_search(" Tai.Man@Example.HK ", None);
        assert_eq!(s.keys, vec!["email:tai.man@example.hk".to_string()]);
        let p = pattern_search("陳 大文");
        assert!(p.patterns.contains(&"陳大文".to_string()), "{p:?}");
    }
}
