//! A lazily generated table: seed rows come from a function of their index,
//! only written or deleted rows are stored. Rows list in `(updatedAt, id)`
//! order, which is Shopify's `sortKey: UPDATED_AT` order with the id as the
//! tie-breaker of its keyset cursor.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

/// A row the table can order.
pub trait Row: Clone {
    /// Numeric id.
    fn id(&self) -> u64;
    /// `updatedAt`.
    fn updated_at(&self) -> DateTime<Utc>;
}

/// A keyset position: the last `(updatedAt, id)` returned.
pub type Position = (DateTime<Utc>, u64);

/// The table.
pub struct Table<R> {
    seed_count: u64,
    first_id: u64,
    generate: Box<dyn Fn(u64) -> R + Send + Sync>,
    seed_time: fn(u64) -> DateTime<Utc>,
    overrides: HashMap<u64, Option<R>>,
    changed: BTreeSet<Position>,
    next_id: u64,
}

impl<R: Row> Table<R> {
    /// A table of `seed_count` generated rows with ids from `first_id`.
    pub fn new(
        seed_count: u64,
        first_id: u64,
        seed_time: fn(u64) -> DateTime<Utc>,
        generate: Box<dyn Fn(u64) -> R + Send + Sync>,
    ) -> Self {
        Table {
            seed_count,
            first_id,
            generate,
            seed_time,
            overrides: HashMap::new(),
            changed: BTreeSet::new(),
            next_id: first_id + seed_count + 1_000,
        }
    }

    /// A row by id.
    pub fn get(&self, id: u64) -> Option<R> {
        match self.overrides.get(&id) {
            Some(row) => row.clone(),
            None if id >= self.first_id && id - self.first_id < self.seed_count => {
                Some((self.generate)(id - self.first_id))
            }
            None => None,
        }
    }

    /// Stores a row (create or update); the caller has set its `updatedAt`.
    pub fn put(&mut self, row: R) {
        if let Some(Some(old)) = self.overrides.get(&row.id()) {
            self.changed.remove(&(old.updated_at(), old.id()));
        }
        self.changed.insert((row.updated_at(), row.id()));
        self.overrides.insert(row.id(), Some(row));
    }

    /// Deletes a row; true if it existed.
    pub fn delete(&mut self, id: u64) -> bool {
        let Some(old) = self.get(id) else {
            return false;
        };
        self.changed.remove(&(old.updated_at(), old.id()));
        self.overrides.insert(id, None);
        true
    }

    /// A fresh id for a created row.
    pub fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Number of live rows.
    pub fn len(&self) -> u64 {
        let mut n = self.seed_count;
        for (id, row) in &self.overrides {
            let seeded = *id >= self.first_id && id - self.first_id < self.seed_count;
            match (seeded, row.is_some()) {
                (true, false) => n -= 1,
                (false, true) => n += 1,
                _ => {}
            }
        }
        n
    }

    /// True when the table holds no live row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` rows after `after`, with `updatedAt` inside `[since, until)`,
    /// and whether more follow.
    pub fn list(
        &self,
        after: Option<Position>,
        since: Option<(DateTime<Utc>, bool)>,
        until: Option<DateTime<Utc>>,
        limit: usize,
    ) -> (Vec<R>, bool) {
        let mut out = Vec::with_capacity(limit.min(1_024) + 1);
        let keep = |r: &R| {
            let t = r.updated_at();
            let above = match since {
                Some((s, inclusive)) => t > s || (inclusive && t == s),
                None => true,
            };
            above && until.is_none_or(|u| t < u)
        };
        // seed rows: index order is (updatedAt, id) order
        let mut i = match after {
            Some(pos) => self.seed_index_after(pos),
            None => 0,
        };
        if let Some((s, _)) = since {
            i = i.max(self.seed_index_at(s));
        }
        while i < self.seed_count && out.len() <= limit {
            let id = self.first_id + i;
            if until.is_some_and(|u| (self.seed_time)(i) >= u) {
                break;
            }
            if !self.overrides.contains_key(&id) {
                let row = (self.generate)(i);
                if keep(&row) {
                    out.push(row);
                }
            }
            i += 1;
        }
        // written rows, all newer than every seed row
        let start = after.unwrap_or((DateTime::<Utc>::MIN_UTC, 0));
        for pos in self.changed.range(start..) {
            if out.len() > limit {
                break;
            }
            if Some(*pos) == after {
                continue;
            }
            if let Some(Some(row)) = self.overrides.get(&pos.1) {
                if keep(row) {
                    out.push(row.clone());
                }
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        (out, more)
    }

    /// The first seed index whose position is after `pos`.
    fn seed_index_after(&self, pos: Position) -> u64 {
        self.partition(|i| ((self.seed_time)(i), self.first_id + i) <= pos)
    }

    /// The first seed index updated at or after `t`.
    fn seed_index_at(&self, t: DateTime<Utc>) -> u64 {
        self.partition(|i| (self.seed_time)(i) < t)
    }

    /// Binary search: the first index for which `before` is false.
    fn partition(&self, before: impl Fn(u64) -> bool) -> u64 {
        let (mut lo, mut hi) = (0, self.seed_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}
