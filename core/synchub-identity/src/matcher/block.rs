//! Blocking: each record emits a few keys (email, phone, email local part,
//! name codes robust to romanization and first/last swaps, birth date or
//! street with an initial); records sharing a key become candidate pairs.
//! Oversized blocks (very common names) fall back to a sorted neighbourhood
//! window, so the number of pairs stays linear in the number of records.

use std::hash::{Hash, Hasher};

use rayon::prelude::*;
use rustc_hash::FxHasher;

use super::prepare::Prepared;
use crate::normalize::name::NamePart;

fn key<T: Hash>(tag: u8, value: T) -> u64 {
    let mut h = FxHasher::default();
    tag.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

fn part_codes(part: &NamePart) -> Vec<u64> {
    let mut codes = Vec::with_capacity(4);
    if let Some(first) = part.syllables.as_ref().and_then(|s| s.first()) {
        codes.extend(first.iter().map(|id| key(1, id)));
    }
    let prefix: String = part.compact.chars().take(3).collect();
    if !prefix.is_empty() {
        codes.push(key(2, prefix));
    }
    codes
}

/// Blocking keys of one prepared record.
pub fn block_keys(p: &Prepared) -> Vec<u64> {
    let mut keys = Vec::with_capacity(16);
    keys.extend(p.emails.iter().map(|e| key(10, e)));
    for e in &p.emails {
        if let Some((local, _)) = e.split_once('@').filter(|(l, _)| l.len() >= 5) {
            keys.push(key(11, local));
        }
    }
    keys.extend(p.phones.iter().map(|x| key(12, x)));
    let (given, family) = (part_codes(&p.name.given), part_codes(&p.name.family));
    for g in &given {
        for f in &family {
            // Symmetric in given/family, so swapped names share the key.
            keys.push(key(13, (g.min(f), g.max(f))));
        }
    }
    let initials = {
        let (a, b) = (p.name.given.initial(), p.name.family.initial());
        (a.min(b), a.max(b))
    };
    if let Some(d) = p.birth_date {
        keys.push(key(14, (d, initials.0)));
        keys.push(key(14, (d, initials.1)));
    }
    if let Some(s) = &p.street {
        keys.push(key(15, (s, initials.1)));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Candidate pairs `(a, b)` with `a < b`, packed as `a << 32 | b`, sorted and unique.
pub fn candidate_pairs(records: &[Prepared], max_block: usize, window: usize) -> Vec<u64> {
    let mut entries: Vec<(u64, u32)> = records
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, p)| {
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            block_keys(p).into_iter().map(move |k| (k, idx))
        })
        .collect();
    entries.par_sort_unstable();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        if i == entries.len() || entries[i].0 != entries[start].0 {
            if i - start > 1 {
                groups.push((start, i));
            }
            start = i;
        }
    }
    let mut pairs: Vec<u64> = groups
        .par_iter()
        .flat_map_iter(|&(s, e)| {
            let members: Vec<u32> = entries[s..e].iter().map(|(_, i)| *i).collect();
            block_pairs(records, members, max_block, window)
        })
        .collect();
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs
}

fn pack(a: u32, b: u32) -> u64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    (u64::from(lo) << 32) | u64::from(hi)
}

fn block_pairs(
    records: &[Prepared],
    mut members: Vec<u32>,
    max_block: usize,
    window: usize,
) -> Vec<u64> {
    let mut out = Vec::new();
    if members.len() <= max_block {
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                out.push(pack(*a, *b));
            }
        }
        return out;
    }
    // Sorted neighbourhood: order by given name then family name, compare
    // each record with the next `window` ones.
    members.sort_by(|x, y| {
        let (px, py) = (&records[*x as usize].name, &records[*y as usize].name);
        (&px.given.compact, &px.family.compact, x).cmp(&(&py.given.compact, &py.family.compact, y))
    });
    for (i, a) in members.iter().enumerate() {
        for b in members.iter().skip(i + 1).take(window) {
            out.push(pack(*a, *b));
        }
    }
    out
}

/// Unpack a pair made by [`candidate_pairs`].
pub fn unpack(pair: u64) -> (u32, u32) {
    (
        u32::try_from(pair >> 32).unwrap_or(u32::MAX),
        u32::try_from(pair & 0xFFFF_FFFF).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use synchub_core::model::Contact;

    fn prep(full: &str, email: &str) -> Prepared {
        let c = Contact {
            full_name: Some(full.into()),
            emails: vec![email.into()],
            ..Contact::default()
        };
        Prepared::new(&c, None)
    }

    #[test]
    fn romanized_and_swapped_names_share_a_block() {
        let recs = vec![
            prep("陳大文", ""),
            prep("Chan Tai Man", ""),
            prep("Tai Man Chan", ""),
            prep("Jane Doe", ""),
        ];
        let pairs: Vec<(u32, u32)> = candidate_pairs(&recs, 100, 5)
            .into_iter()
            .map(unpack)
            .collect();
        assert!(pairs.contains(&(0, 1)));
        assert!(pairs.contains(&(0, 2)) || pairs.contains(&(1, 2)));
        assert!(!pairs.iter().any(|(a, b)| *a == 3 || *b == 3));
    }

    #[test]
    fn oversized_blocks_stay_linear() {
        let recs: Vec<Prepared> = (0..1000)
            .map(|i| prep("Wei Chen", &format!("u{i}@x.com")))
            .collect();
        let pairs = candidate_pairs(&recs, 50, 4);
        assert!(pairs.len() <= 1000 * 4 * 3, "{} pairs", pairs.len());
        assert!(pairs.len() >= 999);
    }
}
