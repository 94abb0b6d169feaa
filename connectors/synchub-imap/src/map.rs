//! Pure mapping from fetched IMAP messages to email activities.

use serde_json::json;
use sha2::{Digest, Sha256};
use synchub_core::model::{Activity, ActivityKind, Participant, Record};
use synchub_core::RemoteRecord;

use crate::mime;
use crate::proto::Token;

/// The header fields fetched with `BODY.PEEK[HEADER.FIELDS (...)]`.
pub const HEADER_FIELDS: &str = "FROM TO CC SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES CONTENT-TYPE CONTENT-TRANSFER-ENCODING";

/// How many body bytes are read for a snippet.
pub const SNIPPET_BYTES: usize = 2048;

/// Characters kept in a snippet.
pub const SNIPPET_CHARS: usize = 200;

/// One message as a `UID FETCH` returned it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// UID.
    pub uid: Option<u32>,
    /// MODSEQ (CONDSTORE).
    pub modseq: Option<u64>,
    /// Flags, without `\Recent`.
    pub flags: Vec<String>,
    /// The header fields.
    pub header: Option<Vec<u8>>,
    /// The first bytes of the body text.
    pub text: Option<Vec<u8>>,
}

/// Reads the items of a `FETCH` response (`* n FETCH (...)`, star removed).
pub fn parse_fetch(resp: &[Token]) -> Option<Fetched> {
    if resp.get(1)?.atom()? != "FETCH" {
        return None;
    }
    let items = resp.get(2)?.list()?;
    let mut f = Fetched::default();
    #[derive(Clone, Copy)]
    enum Section {
        None,
        Header,
        Text,
    }
    let mut section = Section::None;
    let mut i = 0;
    while i < items.len() {
        match &items[i] {
            Token::Atom(k) => {
                let k = k.to_ascii_uppercase();
                if k == "UID" {
                    f.uid = items
                        .get(i + 1)
                        .and_then(Token::number)
                        .and_then(|n| u32::try_from(n).ok());
                    i += 2;
                    continue;
                }
                if k == "MODSEQ" {
                    f.modseq = items
                        .get(i + 1)
                        .and_then(Token::list)
                        .and_then(|l| l.first())
                        .and_then(Token::number);
                    i += 2;
                    continue;
                }
                if k == "FLAGS" {
                    f.flags = items
                        .get(i + 1)
                        .and_then(Token::list)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(Token::atom)
                        .filter(|a| !a.eq_ignore_ascii_case("\\Recent"))
                        .map(str::to_string)
                        .collect();
                    i += 2;
                    continue;
                }
                if k.starts_with("BODY[HEADER") {
                    section = Section::Header;
                } else if k.starts_with("BODY[TEXT") {
                    section = Section::Text;
                }
            }
            Token::Str(b) => match section {
                Section::Header => f.header = Some(b.clone()),
                Section::Text => f.text = Some(b.clone()),
                Section::None => {}
            },
            Token::Nil | Token::List(_) => {}
        }
        i += 1;
    }
    Some(f)
}

/// The stable id of a message across folders, mailboxes and connectors:
/// its Message-ID, or for a message without one a hash of the headers that
/// identify it.
pub fn message_key(headers: &[(String, String)]) -> String {
    if let Some(id) =
        mime::header(headers, "message-id").and_then(|v| mime::message_ids(v).into_iter().next())
    {
        return id;
    }
    let mut h = Sha256::new();
    for name in ["from", "to", "cc", "date", "subject"] {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(mime::header(headers, name).unwrap_or("").as_bytes());
        h.update(b"\0");
    }
    format!(
        "<sha256-{}@synchub.invalid>",
        &hex::encode(h.finalize())[..32]
    )
}

/// Maps one fetched message of `folder` to an activity.
pub fn to_remote(folder: &str, uidvalidity: u32, f: &Fetched) -> Result<RemoteRecord, String> {
    let uid = f.uid.ok_or("the FETCH response has no UID")?;
    let raw_header = f
        .header
        .as_deref()
        .ok_or("the FETCH response has no header fields")?;
    let headers = mime::parse_headers(raw_header);
    let key = message_key(&headers);
    let mut participants = Vec::new();
    for role in ["from", "to", "cc"] {
        for value in headers.iter().filter(|(n, _)| n == role).map(|(_, v)| v) {
            for a in mime::parse_addresses(value) {
                participants.push(Participant {
                    role: role.into(),
                    email: Some(a.email),
                    name: a.name,
                });
            }
        }
    }
    let references = mime::header(&headers, "references")
        .map(mime::message_ids)
        .unwrap_or_default();
    let in_reply_to = mime::header(&headers, "in-reply-to")
        .map(mime::message_ids)
        .unwrap_or_default();
    // The thread is named by its first message: the oldest reference.
    let thread = references
        .first()
        .or(in_reply_to.first())
        .cloned()
        .unwrap_or_else(|| key.clone());
    let snippet = f.text.as_deref().and_then(|t| {
        mime::snippet(
            t,
            mime::header(&headers, "content-type"),
            mime::header(&headers, "content-transfer-encoding"),
            SNIPPET_CHARS,
        )
    });
    let mut custom = synchub_core::model::CustomFields::default();
    custom.insert("folder".into(), json!(folder));
    custom.insert("flags".into(), json!(f.flags));
    if let Some(r) = in_reply_to.first() {
        custom.insert("in_reply_to".into(), json!(r));
    }
    let activity = Activity {
        kind: ActivityKind::Email,
        subject: mime::header(&headers, "subject")
            .map(|s| mime::decode_words(s).trim().to_string()),
        snippet,
        participants,
        occurred_at: mime::header(&headers, "date").and_then(mime::parse_date),
        message_id: Some(key.clone()),
        thread_id: Some(thread),
        custom,
    };
    Ok(RemoteRecord {
        external_id: key,
        version: f.modseq.map(|m| m.to_string()),
        updated_at: None,
        deleted: false,
        record: Some(Record::Activity(activity)),
        raw: json!({ "folder": folder, "uidvalidity": uidvalidity, "uid": uid, "modseq": f.modseq, "flags": f.flags }),
    })
}

/// A message expunged from `folder`.
pub fn deleted(folder: &str, uid: u32, external_id: String) -> RemoteRecord {
    RemoteRecord {
        external_id,
        version: None,
        updated_at: None,
        deleted: true,
        record: None,
        raw: json!({ "folder": folder, "uid": uid, "vanished": true }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::proto::tokenize;

    #[test]
    fn maps_a_fetch_to_an_activity() {
        let header = "From: =?UTF-8?B?6Zmz5aSn5paH?= <Chen@Example.com>\r\nTo: Alice <alice@synchub.test>, bob@x.org\r\nSubject: =?UTF-8?Q?=E5=A0=B1=E5=83=B9?= 12\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m1@x>\r\nReferences: <root@x> <m0@x>\r\nIn-Reply-To: <m0@x>\r\n\r\n";
        let raw = format!(
            "1 FETCH (UID 42 MODSEQ (7) FLAGS (\\Seen \\Recent) BODY[HEADER.FIELDS ({HEADER_FIELDS})] {{{}}}\r\n{header} BODY[TEXT]<0> {{5}}\r\nHello)\r\n",
            header.len()
        );
        let f = parse_fetch(&tokenize(raw.as_bytes()).unwrap()).unwrap();
        assert_eq!((f.uid, f.modseq), (Some(42), Some(7)));
        assert_eq!(f.flags, vec!["\\Seen"]);
        let r = to_remote("INBOX", 9, &f).unwrap();
        assert_eq!(r.external_id, "<m1@x>");
        assert_eq!(r.version.as_deref(), Some("7"));
        let Some(Record::Activity(a)) = r.record else {
            panic!("not an activity")
        };
        assert_eq!(a.subject.as_deref(), Some("報價 12"));
        assert_eq!(a.snippet.as_deref(), Some("Hello"));
        assert_eq!(a.thread_id.as_deref(), Some("<root@x>"));
        assert_eq!(a.participants.len(), 3);
        assert_eq!(a.participants[0].name.as_deref(), Some("陳大文"));
        assert_eq!(a.participants[0].email.as_deref(), Some("chen@example.com"));
        assert_eq!(a.participants[2].role, "to");
        assert_eq!(a.custom.get("folder"), Some(&json!("INBOX")));
    }

    #[test]
    fn a_message_without_message_id_gets_a_stable_key() {
        let h1 = mime::parse_headers(
            b"From: a@x\r\nSubject: hi\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n",
        );
        let h2 = mime::parse_headers(
            b"Subject: hi\r\nFrom: a@x\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n",
        );
        let h3 = mime::parse_headers(b"From: a@x\r\nSubject: ho\r\n");
        assert_eq!(message_key(&h1), message_key(&h2));
        assert_ne!(message_key(&h1), message_key(&h3));
        assert!(message_key(&h1).starts_with("<sha256-"));
    }
}
