//! What a run did, per stream.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counts for one stream (connection + object).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamReport {
    /// Records read from the source.
    pub read: u64,
    /// New CRM records created.
    pub created: u64,
    /// CRM records changed.
    pub updated: u64,
    /// Source records matched to an existing CRM record (dedup).
    pub merged: u64,
    /// Records already in step.
    pub unchanged: u64,
    /// Same-field conflicts sent to review.
    pub conflicted: u64,
    /// Items stored as dead letters.
    pub dead_lettered: u64,
    /// Deletions applied.
    pub deleted: u64,
    /// Changes written to this connection.
    pub pushed: u64,
    /// Changes this connection refused.
    pub push_failed: u64,
    /// Pages applied.
    pub pages: u64,
    /// Wall-clock seconds spent on this stream.
    pub seconds: f64,
    /// The first invalid items (where and why; at most [`MAX_INVALID`]), so
    /// that a dry run, which keeps no dead letters, can still show them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<Invalid>,
    /// Ids read more than once in this run with nothing saying the later
    /// read is newer (the later one was applied over the earlier).
    #[serde(skip_serializing_if = "is_zero")]
    pub repeated_ids: u64,
    /// Times the source asked for a full resync (an expired position).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resyncs: u64,
    /// The first of them, naming both reads (at most [`MAX_INVALID`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Contacts the pull matcher merged into an existing one by fuzzy
    /// evidence (also counted in `merged`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fuzzy_merged: u64,
    /// Contacts created and queued for review with an existing one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fuzzy_queued: u64,
    /// The pull matcher's model and thresholds (of the last page that used it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<crate::fuzzy::pull::PullMatcher>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many invalid items a report lists per stream.
pub const MAX_INVALID: usize = 100;

/// One invalid item: where in the source, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invalid {
    /// Row number, file and line, or source id.
    pub location: String,
    /// Why it was rejected.
    pub reason: String,
}

impl StreamReport {
    /// Adds another report's counts into this one.
    pub fn absorb(&mut self, o: &StreamReport) {
        self.read += o.read;
        self.created += o.created;
        self.updated += o.updated;
        self.merged += o.merged;
        self.unchanged += o.unchanged;
        self.conflicted += o.conflicted;
        self.dead_lettered += o.dead_lettered;
        self.deleted += o.deleted;
        self.pushed += o.pushed;
        self.push_failed += o.push_failed;
        self.pages += o.pages;
        self.seconds += o.seconds;
        let room = MAX_INVALID.saturating_sub(self.invalid.len());
        self.invalid.extend(o.invalid.iter().take(room).cloned());
        self.repeated_ids += o.repeated_ids;
        self.resyncs += o.resyncs;
        let room = MAX_INVALID.saturating_sub(self.warnings.len());
        self.warnings.extend(o.warnings.iter().take(room).cloned());
        self.fuzzy_merged += o.fuzzy_merged;
        self.fuzzy_queued += o.fuzzy_queued;
        if o.matcher.is_some() {
            self.matcher.clone_from(&o.matcher);
        }
    }
}

/// The report of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Pipeline name.
    pub pipeline: String,
    /// Nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// Per stream, keyed `connection.object`.
    pub streams: BTreeMap<String, StreamReport>,
    /// Streams that failed, with the error.
    pub errors: BTreeMap<String, String>,
    /// Wall-clock seconds for the whole run.
    pub seconds: f64,
}

impl RunReport {
    /// The report of one stream, created on first use.
    pub fn stream(
        &mut self,
        connection: &str,
        object: synchub_core::ObjectKind,
    ) -> &mut StreamReport {
        self.streams
            .entry(format!("{connection}.{object}"))
            .or_default()
    }

    /// Sum over all streams.
    pub fn total(&self) -> StreamReport {
        let mut t = StreamReport::default();
        for s in self.streams.values() {
            t.absorb(s);
        }
        t.seconds = self.seconds;
        t
    }

    /// Writes made anywhere (CRM records or remote systems).
    pub fn writes(&self) -> u64 {
        let t = self.total();
        t.created + t.updated + t.deleted + t.pushed
    }

    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{:<28} {:>8} {:>8} {:>8} {:>7} {:>9} {:>10} {:>6} {:>7} {:>8}\n",
            "stream",
            "read",
            "created",
            "updated",
            "merged",
            "unchanged",
            "conflicted",
            "dead",
            "pushed",
            "seconds"
        );
        for (name, s) in &self.streams {
            out.push_str(&format!(
                "{:<28} {:>8} {:>8} {:>8} {:>7} {:>9} {:>10} {:>6} {:>7} {:>8.2}\n",
                name,
                s.read,
                s.created,
                s.updated,
                s.merged,
                s.unchanged,
                s.conflicted,
                s.dead_lettered,
                s.pushed,
                s.seconds
            ));
        }
        for (name, s) in &self.streams {
            for w in &s.warnings {
                out.push_str(&format!("warning in {name}: {w}\n"));
            }
        }
        for (name, e) in &self.errors {
            out.push_str(&format!("error in {name}: {e}\n"));
        }
        out
    }
}
