//! Reading a stream: a full listing by query (paged with 1-based
//! `STARTPOSITION`, ordered by `MetaData.LastUpdatedTime`, filtered on a
//! [`Watermark`]), then Change Data Capture inside its 30-day window; a
//! cursor older than the window, or a CDC answer saturated at 1,000 objects,
//! falls back to a query pass from that time.
//! <https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/change-data-capture>
//!
//! A query pass pages by offset, so a record updated during the pass moves
//! to its end and may shift another past the reader; the CDC that follows
//! a pass starts at the pass's own start (server time), which re-reads
//! everything changed while it ran.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use synchub_core::{ConnectorError, Cursor, Page, Rejected, RemoteRecord, Watermark};

use crate::client::{quote, Api, CallError};
use crate::map;

/// CDC looks back at most 30 days; keep a day's margin for clock skew.
pub const CDC_WINDOW: i64 = 29;
/// A CDC answer with this many objects may be cut short.
pub const CDC_CAP: usize = 1000;

/// Position in one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum QboCursor {
    /// A query pass over the stream's entities.
    Query {
        /// Index of the entity being listed.
        entity: usize,
        /// Lower bound of the pass (`None`: everything).
        from: Option<DateTime<Utc>>,
        /// Server time when the pass began: where CDC resumes.
        started: DateTime<Utc>,
        /// Watermark of the current entity (its `pass.page` is the STARTPOSITION).
        wm: Watermark,
        /// Objects of the entities already listed in this pass that lie
        /// in the overlap window (`Entity:Id` → `LastUpdatedTime`), handed
        /// to the CDC that follows so it does not deliver them again.
        #[serde(default)]
        listed: BTreeMap<String, DateTime<Utc>>,
    },
    /// Incremental by CDC.
    Cdc {
        /// `changedSince` of the next request.
        since: DateTime<Utc>,
        /// Objects already delivered with a time at or after `since`
        /// (`Entity:Id` → `LastUpdatedTime` and `SyncToken`, the latter
        /// unknown for objects handed over by a query pass): the overlap
        /// that covers late commits and clock skew re-lists them;
        /// unchanged, they are not delivered again.
        #[serde(default)]
        seen: BTreeMap<String, (DateTime<Utc>, Option<String>)>,
    },
}

impl QboCursor {
    /// Reads the engine's opaque cursor.
    pub fn from_cursor(c: Option<&Cursor>, host: &str) -> Result<Option<Self>, ConnectorError> {
        c.map(|c| {
            serde_json::from_value(c.0.clone()).map_err(|e| ConnectorError::Protocol {
                host: host.to_string(),
                message: format!("the stored cursor is not a QuickBooks cursor: {e}"),
            })
        })
        .transpose()
    }

    /// The opaque form.
    pub fn to_cursor(&self) -> Cursor {
        Cursor(serde_json::to_value(self).unwrap_or_default())
    }

    fn pass_from(from: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        QboCursor::Query {
            entity: 0,
            from,
            started: now,
            wm: Watermark {
                watermark: from,
                ..Watermark::default()
            },
            listed: BTreeMap::new(),
        }
    }
}

/// How one stream is read.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// The QuickBooks entities of the stream.
    pub entities: &'static [&'static str],
    /// Maps one object of `entity`.
    pub map: fn(&str, &Value) -> Result<RemoteRecord, String>,
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Reads the next page of `stream`.
pub async fn pull(
    api: &Api,
    stream: Stream,
    from: Option<&Cursor>,
    now: DateTime<Utc>,
    page_size: u32,
    overlap: Duration,
) -> Result<Page, ConnectorError> {
    let cursor = QboCursor::from_cursor(from, api.host())?
        .unwrap_or_else(|| QboCursor::pass_from(None, now));
    match cursor {
        QboCursor::Cdc { since, .. } if now - since > Duration::days(CDC_WINDOW) => {
            tracing::info!(host = %api.host(), %since, "cursor older than the CDC window; reading by query");
            query_page(
                api,
                stream,
                QboCursor::pass_from(Some(since), now),
                page_size,
                overlap,
            )
            .await
        }
        QboCursor::Cdc { since, seen } => cdc_page(api, stream, since, seen, now, overlap).await,
        q @ QboCursor::Query { .. } => query_page(api, stream, q, page_size, overlap).await,
    }
}

async fn cdc_page(
    api: &Api,
    stream: Stream,
    since: DateTime<Utc>,
    mut seen: BTreeMap<String, (DateTime<Utc>, Option<String>)>,
    now: DateTime<Utc>,
    overlap: Duration,
) -> Result<Page, ConnectorError> {
    let v = api
        .cdc(stream.entities, &since.to_rfc3339())
        .await
        .map_err(|e| api.fault_error(e))?;
    let mut objects: Vec<(&str, &Value)> = Vec::new();
    let groups = v
        .get("CDCResponse")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("QueryResponse"))
        .and_then(Value::as_array)
        .ok_or_else(|| ConnectorError::Protocol {
            host: api.host().to_string(),
            message: "change data capture: the answer has no CDCResponse[0].QueryResponse".into(),
        })?;
    for g in groups {
        for entity in stream.entities {
            if let Some(list) = g.get(*entity).and_then(Value::as_array) {
                objects.extend(list.iter().map(|o| (*entity, o)));
            }
        }
    }
    if objects.len() >= CDC_CAP {
        tracing::info!(host = %api.host(), %since, "CDC answer saturated; reading the window by query");
        return Ok(Page {
            next: Some(QboCursor::pass_from(Some(since), now).to_cursor()),
            done: false,
            ..Page::default()
        });
    }
    let mut page = Page::default();
    for (i, (entity, o)) in objects.into_iter().enumerate() {
        if let (Some(id), Some(t)) = (o.get("Id").and_then(Value::as_str), map::last_updated(o)) {
            let key = format!("{entity}:{id}");
            let version = o
                .get("SyncToken")
                .and_then(Value::as_str)
                .map(str::to_string);
            // Delivered by an earlier read, unchanged since: the same
            // SyncToken (every write moves it), or the same time when the
            // earlier read did not keep the token.
            let unchanged = match seen.get(&key) {
                Some((at, Some(v))) => *at == t && version.as_ref() == Some(v),
                Some((at, None)) => *at == t,
                None => false,
            };
            if unchanged {
                continue;
            }
            seen.insert(key, (t, version));
        }
        push_mapped(&mut page, stream, entity, o, &format!("cdc item {i}"));
    }
    let server_time = parse_time(v.get("time").and_then(Value::as_str)).unwrap_or(now);
    let next_since = server_time - overlap;
    seen.retain(|_, (t, _)| *t >= next_since);
    page.next = Some(
        QboCursor::Cdc {
            since: next_since,
            seen,
        }
        .to_cursor(),
    );
    page.done = true;
    Ok(page)
}

fn push_mapped(page: &mut Page, stream: Stream, entity: &str, o: &Value, location: &str) {
    match (stream.map)(entity, o) {
        Ok(r) => page.records.push(r),
        Err(reason) => page.rejected.push(Rejected {
            external_id: o.get("Id").and_then(Value::as_str).map(str::to_string),
            location: Some(location.to_string()),
            reason,
            raw: o.clone(),
        }),
    }
}

async fn query_page(
    api: &Api,
    stream: Stream,
    cursor: QboCursor,
    page_size: u32,
    overlap: Duration,
) -> Result<Page, ConnectorError> {
    let QboCursor::Query {
        entity,
        from,
        mut started,
        mut wm,
        mut listed,
    } = cursor
    else {
        return Err(ConnectorError::Protocol {
            host: api.host().to_string(),
            message: "internal: query page without a query cursor".into(),
        });
    };
    let Some(name) = stream.entities.get(entity).copied() else {
        return Err(ConnectorError::Protocol {
            host: api.host().to_string(),
            message: format!("the stored cursor names entity #{entity}, which this stream lacks"),
        });
    };
    let req = wm.next_request(overlap);
    let start: u64 = match &req.page {
        Some(p) => p.parse().map_err(|_| ConnectorError::Protocol {
            host: api.host().to_string(),
            message: format!("the stored cursor has a bad start position `{p}`"),
        })?,
        None => 1,
    };
    let mut conds = Vec::new();
    if let Some(since) = req.since {
        conds.push(format!(
            "MetaData.LastUpdatedTime >= {}",
            quote(&since.to_rfc3339())
        ));
    }
    if name == "Customer" {
        // Inactive customers are our deletions: list them too.
        conds.push("Active IN (true, false)".into());
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" where {}", conds.join(" and "))
    };
    let q = format!(
        "select * from {name}{filter} orderby MetaData.LastUpdatedTime startposition {start} maxresults {page_size}"
    );
    let (qr, time) = api
        .query(&q)
        .await
        .map_err(|e: CallError| api.fault_error(e))?;
    if entity == 0 && req.page.is_none() {
        if let Some(t) = parse_time(time.as_deref()) {
            started = t;
        }
    }
    let rows = qr
        .get(name)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut page = Page::default();
    for (i, o) in rows.iter().enumerate() {
        let id = o.get("Id").and_then(Value::as_str).unwrap_or_default();
        if wm.admit(id, map::last_updated(o), overlap) {
            push_mapped(
                &mut page,
                stream,
                name,
                o,
                &format!("{name} position {}", start + i as u64),
            );
        }
    }
    let full = rows.len() as u64 >= u64::from(page_size);
    wm.end_page(
        &req,
        full.then(|| (start + u64::from(page_size)).to_string()),
    );
    let next = if wm.in_pass() {
        QboCursor::Query {
            entity,
            from,
            started,
            wm,
            listed,
        }
    } else {
        listed.extend(wm.seen.iter().map(|(id, t)| (format!("{name}:{id}"), *t)));
        if entity + 1 < stream.entities.len() {
            QboCursor::Query {
                entity: entity + 1,
                from,
                started,
                wm: Watermark {
                    watermark: from,
                    ..Watermark::default()
                },
                listed,
            }
        } else {
            page.done = true;
            let since = started - overlap;
            listed.retain(|_, t| *t >= since);
            QboCursor::Cdc {
                since,
                seen: listed.into_iter().map(|(k, t)| (k, (t, None))).collect(),
            }
        }
    };
    page.next = Some(next.to_cursor());
    Ok(page)
}
