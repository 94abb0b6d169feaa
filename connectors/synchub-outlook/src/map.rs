//! Pure mapping: Graph messages to email activities, Graph contacts to and
//! from CRM contacts.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use synchub_core::model::{Activity, ActivityKind, Address, Contact, CustomFields, Participant};
use synchub_core::{Record, RemoteRecord};

/// The message properties asked for with `$select`.
pub const MESSAGE_SELECT: &str = "id,subject,bodyPreview,from,toRecipients,ccRecipients,\
receivedDateTime,sentDateTime,lastModifiedDateTime,internetMessageId,conversationId,parentFolderId,isRead";

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn recipient(v: &Value, role: &str) -> Option<Participant> {
    let e = &v["emailAddress"];
    let email = text(&e["address"]).map(|a| a.to_lowercase());
    let name = text(&e["name"]);
    (email.is_some() || name.is_some()).then(|| Participant {
        role: role.to_string(),
        email,
        name,
    })
}

/// A delta item that was removed (`@removed`).
pub fn is_removed(item: &Value) -> bool {
    item.get("@removed").is_some()
}

/// A delta item that carries only its changed properties (Graph sends
/// `id` plus what changed for updates): it must be read in full.
pub fn is_partial_message(item: &Value) -> bool {
    !is_removed(item) && item.get("receivedDateTime").is_none()
}

/// A removed item as a deletion.
pub fn removed(id: &str, raw: Value) -> RemoteRecord {
    RemoteRecord {
        external_id: id.to_string(),
        version: None,
        updated_at: None,
        deleted: true,
        record: None,
        raw,
    }
}

/// A Graph message as an email activity.
pub fn message_record(m: &Value, folder: &str) -> Result<RemoteRecord, String> {
    let id = text(&m["id"]).ok_or("message has no `id`")?;
    if is_removed(m) {
        return Ok(removed(&id, m.clone()));
    }
    let mut participants: Vec<Participant> = recipient(&m["from"], "from").into_iter().collect();
    for (key, role) in [("toRecipients", "to"), ("ccRecipients", "cc")] {
        participants.extend(
            m[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| recipient(r, role)),
        );
    }
    let occurred = time(&m["receivedDateTime"]).or_else(|| time(&m["sentDateTime"]));
    let mut custom = CustomFields::new();
    custom.insert("outlook_folder".into(), json!(folder));
    let activity = Activity {
        kind: ActivityKind::Email,
        subject: text(&m["subject"]),
        snippet: text(&m["bodyPreview"]),
        participants,
        occurred_at: occurred,
        message_id: text(&m["internetMessageId"]),
        thread_id: text(&m["conversationId"]),
        custom,
    };
    Ok(RemoteRecord {
        external_id: id,
        version: text(&m["@odata.etag"]),
        updated_at: time(&m["lastModifiedDateTime"]).or(occurred),
        deleted: false,
        record: Some(Record::Activity(activity)),
        raw: m.clone(),
    })
}

/// A Graph contact as a CRM contact.
pub fn contact_record(c: &Value) -> Result<RemoteRecord, String> {
    let id = text(&c["id"]).ok_or("contact has no `id`")?;
    if is_removed(c) {
        return Ok(removed(&id, c.clone()));
    }
    let mut phones: Vec<String> = text(&c["mobilePhone"]).into_iter().collect();
    for key in ["businessPhones", "homePhones"] {
        phones.extend(c[key].as_array().into_iter().flatten().filter_map(text));
    }
    let addresses = ["businessAddress", "homeAddress", "otherAddress"]
        .iter()
        .map(|k| {
            let a = &c[*k];
            Address {
                line1: text(&a["street"]),
                line2: None,
                city: text(&a["city"]),
                region: text(&a["state"]),
                postal_code: text(&a["postalCode"]),
                country: text(&a["countryOrRegion"]),
            }
        })
        .filter(|a| !a.is_empty())
        .collect();
    let contact = Contact {
        given_name: text(&c["givenName"]),
        family_name: text(&c["surname"]),
        full_name: text(&c["displayName"]),
        emails: c["emailAddresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| text(&e["address"]))
            .collect(),
        phones,
        company: text(&c["companyName"]),
        title: text(&c["jobTitle"]),
        addresses,
        tags: c["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(text)
            .collect(),
        ..Contact::default()
    };
    Ok(RemoteRecord {
        external_id: id,
        version: text(&c["@odata.etag"]),
        updated_at: time(&c["lastModifiedDateTime"]),
        deleted: false,
        record: Some(Record::Contact(contact)),
        raw: c.clone(),
    })
}

/// A CRM contact as a Graph contact body, limited to the Graph properties
/// behind `fields` (CRM field names; `None`: every property).
pub fn contact_body(c: &Contact, fields: Option<&[String]>) -> Value {
    let wants = |f: &str| fields.is_none_or(|fs| fs.iter().any(|x| x == f));
    let mut b = Map::new();
    if wants("given_name") {
        b.insert("givenName".into(), json!(c.given_name));
    }
    if wants("family_name") {
        b.insert("surname".into(), json!(c.family_name));
    }
    if wants("full_name") {
        b.insert("displayName".into(), json!(c.full_name));
    }
    if wants("emails") {
        let name = c.display_name();
        b.insert(
            "emailAddresses".into(),
            json!(c
                .emails
                .iter()
                .map(|e| json!({"address": e, "name": name}))
                .collect::<Vec<_>>()),
        );
    }
    if wants("phones") {
        b.insert("mobilePhone".into(), json!(c.phones.first()));
        b.insert(
            "businessPhones".into(),
            json!(c.phones.iter().skip(1).collect::<Vec<_>>()),
        );
    }
    if wants("company") {
        b.insert("companyName".into(), json!(c.company));
    }
    if wants("title") {
        b.insert("jobTitle".into(), json!(c.title));
    }
    if wants("tags") {
        b.insert("categories".into(), json!(c.tags));
    }
    if wants("addresses") {
        let a = c.addresses.first();
        b.insert(
            "businessAddress".into(),
            match a {
                Some(a) => json!({"street": a.line1, "city": a.city, "state": a.region,
                                  "postalCode": a.postal_code, "countryOrRegion": a.country}),
                None => json!({}),
            },
        );
    }
    Value::Object(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    #[test]
    fn delta_page_maps_cjk_messages() {
        let page = fixture("messages_delta_page.json");
        let m = &page["value"][0];
        let r = message_record(m, "inbox").expect("maps");
        let Some(Record::Activity(a)) = r.record else {
            panic!("activity")
        };
        assert_eq!(a.subject.as_deref(), Some("訂單 #1043 出貨通知"));
        assert_eq!(a.participants[0].name.as_deref(), Some("林美玲"));
        assert_eq!(
            a.participants[1].email.as_deref(),
            Some("sales@example.com")
        );
        assert_eq!(
            a.message_id.as_deref(),
            Some("<TY2PR01MB1234.apcprd01.prod.outlook.com>")
        );
    }

    #[test]
    fn final_delta_page_has_a_removal_and_a_partial_update() {
        let page = fixture("messages_delta_final.json");
        assert!(is_removed(&page["value"][0]));
        assert!(
            message_record(&page["value"][0], "inbox")
                .expect("maps")
                .deleted
        );
        assert!(is_partial_message(&page["value"][1]));
    }

    #[test]
    fn contact_maps_and_round_trips() {
        let r = contact_record(&fixture("contact.json")).expect("maps");
        let c = r
            .record
            .as_ref()
            .and_then(Record::as_contact)
            .expect("contact")
            .clone();
        assert_eq!(c.full_name.as_deref(), Some("張偉"));
        assert_eq!(c.family_name.as_deref(), Some("張"));
        assert_eq!(c.company.as_deref(), Some("上海示例贸易有限公司"));
        assert_eq!(c.phones[0], "+86 138 0013 8000");
        assert_eq!(c.addresses[0].city.as_deref(), Some("上海"));
        let mut body = contact_body(&c, None);
        body["id"] = json!("x");
        let back = contact_record(&body).expect("maps");
        assert_eq!(back.record.as_ref().and_then(Record::as_contact), Some(&c));
        let sparse = contact_body(&c, Some(&["title".to_string()]));
        assert_eq!(sparse, json!({"jobTitle": "總經理"}));
    }
}
