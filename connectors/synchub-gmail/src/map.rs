//! Pure mapping: Gmail messages to email activities, People API persons to
//! and from contacts.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use synchub_core::model::{Activity, ActivityKind, Address, Contact, Participant};
use synchub_core::{Record, RemoteRecord};

/// Labels that hide a message from the CRM (the notes: treat as deleted).
pub const HIDDEN_LABELS: [&str; 2] = ["TRASH", "SPAM"];

/// The value of header `name` (case-insensitive) in a message payload.
pub fn header<'a>(msg: &'a Value, name: &str) -> Option<&'a str> {
    msg["payload"]["headers"]
        .as_array()?
        .iter()
        .find(|h| {
            h["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|h| h["value"].as_str())
}

/// The label ids of a message.
pub fn labels(msg: &Value) -> Vec<String> {
    msg["labelIds"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits an address-list header (`"Chan, Tai Man" <a@x>, b@y`) at the
/// commas outside quotes and angle brackets.
pub fn split_addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut cur) = (false, false, String::new());
    let mut escaped = false;
    for ch in value.chars() {
        if escaped {
            cur.push(ch);
            escaped = false;
            continue;
        }
        match ch {
            '\\' if quoted => {
                escaped = true;
                cur.push(ch);
            }
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            '<' if !quoted => {
                angle = true;
                cur.push(ch);
            }
            '>' if !quoted => {
                angle = false;
                cur.push(ch);
            }
            ',' if !quoted && !angle => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// One mailbox of an address list: display name and lower-cased address.
pub fn parse_mailbox(one: &str, role: &str) -> Participant {
    let one = one.trim();
    let (name, addr) = match (one.rfind('<'), one.rfind('>')) {
        (Some(l), Some(r)) if l < r => (one[..l].trim(), one[l + 1..r].trim()),
        _ => ("", one),
    };
    let name = name.trim_matches('"').replace("\\\"", "\"");
    // Gmail returns header values as written: a display name may be RFC 2047
    // encoded words in any charset (`=?Big5?B?...?=`).
    let name = synchub_imap::mime::decode_words(&name);
    let name = name.trim().trim_matches('"').trim();
    Participant {
        role: role.to_string(),
        email: (!addr.is_empty()).then(|| addr.to_lowercase()),
        name: (!name.is_empty()).then(|| name.to_string()),
    }
}

/// The participants of a message from its From, To and Cc headers.
pub fn participants(msg: &Value) -> Vec<Participant> {
    let mut out = Vec::new();
    for (h, role) in [("From", "from"), ("To", "to"), ("Cc", "cc")] {
        if let Some(v) = header(msg, h) {
            out.extend(split_addresses(v).iter().map(|a| parse_mailbox(a, role)));
        }
    }
    out
}

/// `internalDate` (epoch milliseconds, as a string) as an instant.
pub fn internal_date(msg: &Value) -> Option<DateTime<Utc>> {
    let ms: i64 = match &msg["internalDate"] {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp_millis(ms)
}

/// A `messages.get` answer as an email activity; hidden (trash, spam)
/// messages come back as deletions.
pub fn message_record(msg: &Value) -> Result<RemoteRecord, String> {
    let id = msg["id"].as_str().ok_or("message has no `id`")?.to_string();
    let labels = labels(msg);
    let hidden = labels.iter().any(|l| HIDDEN_LABELS.contains(&l.as_str()));
    let version = msg["historyId"].as_str().map(str::to_string);
    let updated_at = internal_date(msg);
    if hidden {
        return Ok(deleted_message(&id, msg.clone()));
    }
    let mut custom = synchub_core::model::CustomFields::new();
    custom.insert("gmail_labels".into(), json!(labels));
    let activity = Activity {
        kind: ActivityKind::Email,
        subject: header(msg, "Subject")
            .map(|s| synchub_imap::mime::decode_words(s).trim().to_string()),
        snippet: msg["snippet"].as_str().map(str::to_string),
        participants: participants(msg),
        occurred_at: updated_at,
        message_id: header(msg, "Message-ID")
            .or_else(|| header(msg, "Message-Id"))
            .map(|m| m.trim().to_string()),
        thread_id: msg["threadId"].as_str().map(str::to_string),
        custom,
    };
    Ok(RemoteRecord {
        external_id: id,
        version,
        updated_at,
        deleted: false,
        record: Some(Record::Activity(activity)),
        raw: msg.clone(),
    })
}

/// A deleted (or hidden) message.
pub fn deleted_message(id: &str, raw: Value) -> RemoteRecord {
    RemoteRecord {
        external_id: id.to_string(),
        version: None,
        updated_at: None,
        deleted: true,
        record: None,
        raw,
    }
}

fn first<'a>(person: &'a Value, key: &str) -> Option<&'a Value> {
    let items = person[key].as_array()?;
    items
        .iter()
        .find(|i| i["metadata"]["primary"].as_bool() == Some(true))
        .or_else(|| items.first())
}

fn text(v: Option<&Value>, key: &str) -> Option<String> {
    v.and_then(|v| v[key].as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A People API person as a contact (a `metadata.deleted` tombstone as a deletion).
pub fn person_record(p: &Value) -> Result<RemoteRecord, String> {
    let id = p["resourceName"]
        .as_str()
        .ok_or("person has no `resourceName`")?
        .to_string();
    let version = p["etag"].as_str().map(str::to_string);
    let updated_at = p["metadata"]["sources"]
        .as_array()
        .and_then(|s| s.iter().find_map(|s| s["updateTime"].as_str()))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    if p["metadata"]["deleted"].as_bool() == Some(true) {
        return Ok(RemoteRecord {
            external_id: id,
            version,
            updated_at,
            deleted: true,
            record: None,
            raw: p.clone(),
        });
    }
    let name = first(p, "names");
    let org = first(p, "organizations");
    let list = |key: &str, pick: &dyn Fn(&Value) -> Option<String>| -> Vec<String> {
        p[key]
            .as_array()
            .map(|a| a.iter().filter_map(pick).collect())
            .unwrap_or_default()
    };
    let contact = Contact {
        given_name: text(name, "givenName"),
        family_name: text(name, "familyName"),
        full_name: text(name, "displayName").or_else(|| text(name, "unstructuredName")),
        emails: list("emailAddresses", &|e| text(Some(e), "value")),
        phones: list("phoneNumbers", &|e| {
            text(Some(e), "canonicalForm").or_else(|| text(Some(e), "value"))
        }),
        company: text(org, "name"),
        title: text(org, "title"),
        addresses: p["addresses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| Address {
                        line1: text(Some(x), "streetAddress"),
                        line2: text(Some(x), "extendedAddress"),
                        city: text(Some(x), "city"),
                        region: text(Some(x), "region"),
                        postal_code: text(Some(x), "postalCode"),
                        country: text(Some(x), "countryCode").or_else(|| text(Some(x), "country")),
                    })
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        ..Contact::default()
    };
    Ok(RemoteRecord {
        external_id: id,
        version,
        updated_at,
        deleted: false,
        record: Some(Record::Contact(contact)),
        raw: p.clone(),
    })
}

/// The People API field masks a contact field change touches.
pub fn person_fields_for(contact_fields: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = contact_fields
        .iter()
        .filter_map(|f| match f.as_str() {
            "given_name" | "family_name" | "full_name" => Some("names"),
            "emails" => Some("emailAddresses"),
            "phones" => Some("phoneNumbers"),
            "company" | "title" => Some("organizations"),
            "addresses" => Some("addresses"),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A contact as a People API person body (without `etag`).
pub fn person_body(c: &Contact) -> Value {
    let mut p = serde_json::Map::new();
    let mut name = serde_json::Map::new();
    if let Some(g) = &c.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &c.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if let Some(f) = &c.full_name {
        name.insert("unstructuredName".into(), json!(f));
    }
    p.insert(
        "names".into(),
        if name.is_empty() {
            json!([])
        } else {
            json!([name])
        },
    );
    p.insert(
        "emailAddresses".into(),
        json!(c
            .emails
            .iter()
            .map(|e| json!({"value": e}))
            .collect::<Vec<_>>()),
    );
    p.insert(
        "phoneNumbers".into(),
        json!(c
            .phones
            .iter()
            .map(|e| json!({"value": e}))
            .collect::<Vec<_>>()),
    );
    let orgs = if c.company.is_some() || c.title.is_some() {
        json!([{"name": c.company, "title": c.title}])
    } else {
        json!([])
    };
    p.insert("organizations".into(), orgs);
    p.insert(
        "addresses".into(),
        json!(c
            .addresses
            .iter()
            .map(|a| json!({
                "streetAddress": a.line1, "extendedAddress": a.line2, "city": a.city,
                "region": a.region, "postalCode": a.postal_code, "countryCode": a.country
            }))
            .collect::<Vec<_>>()),
    );
    Value::Object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        serde_json::from_str(&text).expect("json")
    }

    #[test]
    fn metadata_message_becomes_an_activity_with_cjk_participants() {
        let r = message_record(&fixture("message_metadata.json")).expect("maps");
        let Some(Record::Activity(a)) = r.record else {
            panic!("not an activity")
        };
        assert_eq!(a.subject.as_deref(), Some("報價單 Q-2023-118"));
        assert_eq!(
            a.message_id.as_deref(),
            Some("<CAF=abc123@mail.example.com.hk>")
        );
        assert_eq!(a.participants[0].name.as_deref(), Some("陳大文"));
        assert_eq!(
            a.participants[0].email.as_deref(),
            Some("tai.man.chan@example.com.hk")
        );
        assert_eq!(a.participants[1].role, "to");
        assert_eq!(a.occurred_at.map(|t| t.timestamp()), Some(1_700_640_000));
    }

    #[test]
    fn address_lists_split_outside_quotes() {
        let v = split_addresses(r#""Chan, Tai Man" <TM@Example.hk>, b@y.tw, 王小明 <w@x.tw>"#);
        assert_eq!(v.len(), 3);
        let p = parse_mailbox(&v[0], "cc");
        assert_eq!(p.name.as_deref(), Some("Chan, Tai Man"));
        assert_eq!(p.email.as_deref(), Some("tm@example.hk"));
        assert_eq!(parse_mailbox(&v[2], "to").name.as_deref(), Some("王小明"));
    }

    #[test]
    fn people_page_maps_contacts_and_tombstones() {
        let page = fixture("people_connections_page.json");
        let items = page["connections"].as_array().expect("connections");
        let live = person_record(&items[0]).expect("maps");
        let c = live
            .record
            .as_ref()
            .and_then(Record::as_contact)
            .expect("contact");
        assert_eq!(c.full_name.as_deref(), Some("王小明"));
        assert_eq!(c.phones, vec!["+886912345678".to_string()]);
        assert_eq!(c.company.as_deref(), Some("台灣範例股份有限公司"));
        let gone = person_record(&items[1]).expect("maps");
        assert!(gone.deleted && gone.record.is_none());
    }

    #[test]
    fn person_body_round_trips_through_the_mapping() {
        let c = Contact {
            given_name: Some("小明".into()),
            family_name: Some("王".into()),
            full_name: Some("王小明".into()),
            emails: vec!["w@x.tw".into()],
            company: Some("範例".into()),
            ..Contact::default()
        };
        let mut body = person_body(&c);
        body["resourceName"] = json!("people/c1");
        body["names"][0]["displayName"] = json!("王小明");
        let back = person_record(&body).expect("maps");
        assert_eq!(back.record.as_ref().and_then(Record::as_contact), Some(&c));
    }
}
