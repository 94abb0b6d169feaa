//! Replaying dead letters the way `synchub dead-letters replay` does: the
//! streams the items came from are read again in full with the pipeline
//! as it is now (after a mapping or config fix), through mapping and the
//! engine, holding each stream's lease; the identity map lands each item
//! once. An item whose identity link was written since the replay began
//! (and no new dead letter for it) is marked landed and leaves the queue.

use std::collections::BTreeSet;
use std::time::Duration;

use synchub_core::ObjectKind;
use synchub_engine::{Connection, Engine, LeaseOptions, RunOptions, RunReport};
use synchub_store::dead_letters::StoredDeadLetter;

use crate::{Console, PageError};

/// What became of one replayed dead letter.
#[derive(Debug, Clone)]
pub(crate) struct Replayed {
    pub(crate) id: i64,
    pub(crate) landed: bool,
}

/// How long a replay waits for a stream another run is reading.
const LEASE_WAIT: Duration = Duration::from_secs(10);

fn reader<'a>(
    c: &'a Console,
    name: &str,
    object: ObjectKind,
) -> Option<(&'a Engine, &'a Connection)> {
    c.pipelines.iter().find_map(|p| {
        p.engine
            .connections()
            .iter()
            .find(|conn| {
                conn.name == name && conn.direction.pulls() && conn.objects.contains(&object)
            })
            .map(|conn| (p.engine.as_ref(), conn))
    })
}

/// Whether a pipeline of the console reads the stream a dead letter came from.
pub(crate) fn can_replay(c: &Console, d: &StoredDeadLetter) -> bool {
    reader(c, &d.letter.connection, d.letter.object).is_some()
}

/// Replays `letters` and records each outcome, in the store and in the
/// audit log under `actor`.
pub(crate) async fn replay(
    c: &Console,
    actor: &str,
    letters: &[StoredDeadLetter],
) -> Result<Vec<Replayed>, PageError> {
    let streams: BTreeSet<(String, ObjectKind)> = letters
        .iter()
        .map(|d| (d.letter.connection.clone(), d.letter.object))
        .collect();
    let mut readers = Vec::with_capacity(streams.len());
    for (name, object) in &streams {
        let found = reader(c, name, *object).ok_or_else(|| {
            PageError::conflict(format!(
                "no pipeline of this console reads {object}s from a connection named `{name}`; \
                 serve the console with the pipeline those dead letters came through \
                 (synchub daemon --config-dir DIR, or synchub console --config-dir DIR)"
            ))
        })?;
        readers.push((found, *object));
    }
    let started = synchub_store::now_text();
    let opts = RunOptions {
        full_refresh: true,
        lease: LeaseOptions {
            wait: LEASE_WAIT,
            ..LeaseOptions::default()
        },
        ..RunOptions::default()
    };
    let mut report = RunReport::default();
    for ((engine, conn), object) in readers {
        engine.pull_stream(conn, object, &opts, &mut report).await?;
    }
    let mut out = Vec::with_capacity(letters.len());
    for d in letters {
        let landed = c.store.dead_letter_landed(d.id, &started).await?;
        c.store.mark_dead_letter_replayed(d.id, landed).await?;
        let l = &d.letter;
        let crm_id = match (&l.external_id, landed) {
            (Some(ext), true) => c.store.linked_crm_id(&l.connection, l.object, ext).await?,
            _ => None,
        };
        let item = l
            .external_id
            .clone()
            .or_else(|| l.location.clone())
            .unwrap_or_default();
        let summary = format!(
            "replayed dead letter {} ({}.{} {item}): {}",
            d.id,
            l.connection,
            l.object,
            if landed { "landed" } else { "still rejected" }
        );
        c.store
            .record_audit(
                actor,
                "dead_letter.replay",
                &summary,
                &serde_json::json!({
                    "dead_letter": d.id,
                    "connection": l.connection,
                    "object": l.object.as_str(),
                    "external_id": l.external_id,
                    "landed": landed,
                    "crm_id": crm_id,
                }),
                crm_id.as_slice(),
            )
            .await?;
        out.push(Replayed { id: d.id, landed });
    }
    tracing::info!(
        user = %actor,
        letters = out.len(),
        landed = out.iter().filter(|r| r.landed).count(),
        "console: dead letters replayed"
    );
    Ok(out)
}
