//! Blocking: each record emits a few keys (email, phone, email local part,
//! the whole name read robustly to romanization and first/last swaps, birth
//! date with a name code, street); records sharing a key become candidate
//! pairs. (A given × family prefix key was dropped: at 300k rows it made 39%
//! of the pairs and found 0.04% of the true ones.)
//! Oversized blocks (very common names) fall back to a sorted neighbourhood
//! window, so the number of pairs stays linear in the number of records.

use std::hash::{Hash, Hasher};

use rayon::prelude::*;
use rustc_hash::FxHasher;

use super::prepare::Prepared;
use crate::normalize::name::NamePart;
use crate::normalize::romanize::SyllableId;

fn key<T: Hash>(tag: u8, value: T) -> u64 {
    let mut h = FxHasher::default();
    tag.hash(&mut h);
    value.hash(&mut h);
    h.finish() & !NAME_ONLY
}

/// Low bit of a block key: set on keys made of the name alone.
const NAME_ONLY: u64 = 1;

/// Name-only blocks larger than this are windowed. They grow with the
/// square of the input (a million rows hold ten or so people per common
/// name), and a pair that shares only a name cannot be told apart from two
/// namesakes anyway; pairs that also share an email, a phone, a birth date or
/// a street meet in those blocks.
pub const NAME_BLOCK: usize = 24;

/// Most whole-part codes emitted for one name part.
const MAX_WHOLE_CODES: usize = 4;

/// Codes of a whole name part: every reading of its syllable sequence (so
/// `大文`, `Tai Man` and `Da-Wen` share one), or its compact form when the
/// syllables are not all known. Ambiguous spellings (`wong` is 黃 or 王)
/// multiply the readings; they are capped at [`MAX_WHOLE_CODES`].
fn whole_codes(part: &NamePart) -> Vec<u64> {
    match part.syllables.as_ref() {
        Some(sylls) => readings(sylls),
        None if part.compact.is_empty() => Vec::new(),
        None => vec![key(3, &part.compact)],
    }
}

/// Every reading of a syllable sequence, capped at [`MAX_WHOLE_CODES`].
fn readings(sylls: &[Vec<SyllableId>]) -> Vec<u64> {
    let mut codes = vec![key(4, sylls.len())];
    for options in sylls {
        let mut next = Vec::with_capacity(codes.len() * options.len());
        for c in &codes {
            for id in options {
                if next.len() < MAX_WHOLE_CODES {
                    next.push(key(5, (c, id)));
                }
            }
        }
        codes = next;
    }
    codes
}

/// The first-syllable row ids of a part, or its initial: a short code that
/// survives romanization, for pairing with strong but shared values.
fn initial_codes(part: &NamePart) -> Vec<u64> {
    match part.syllables.as_ref().and_then(|s| s.first()) {
        Some(first) => first.iter().map(|id| key(6, id)).collect(),
        None => part.initial().map(|c| key(7, c)).into_iter().collect(),
    }
}

/// Blocking keys of one prepared record.
///
/// - every email, and its local part when it has five characters or more;
/// - every phone;
/// - the whole name modulo romanization, read family-first and given-first
///   (so swapped or mis-split names share it): blocks about as big as the
///   number of people with that name;
/// - birth date with either part's first-syllable code or initial;
/// - street address on its own (a household's rows and little else);
/// - house number with the street name's first three letters, and each name
///   part with the postal code (typos in the street or the other name part).
pub fn block_keys(p: &Prepared) -> Vec<u64> {
    let mut keys = Vec::with_capacity(24);
    keys.extend(p.emails.iter().map(|e| key(10, e)));
    for e in &p.emails {
        if let Some((local, _)) = e.split_once('@').filter(|(l, _)| l.len() >= 5) {
            keys.push(key(11, local));
        }
    }
    keys.extend(p.phones.iter().map(|x| key(12, x)));
    push_identity_keys(p, &mut keys);
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The keys of [`block_keys`] made without the email and phone values
/// (name, birth date, address): what a record shares with a duplicate whose
/// email and phone differ. A sync pull finds email and phone candidates
/// through the exact keys it stores anyway, and these through
/// [`super::single::fuzzy_keys`].
pub fn identity_keys(p: &Prepared) -> Vec<u64> {
    let mut keys = Vec::with_capacity(16);
    push_identity_keys(p, &mut keys);
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn push_identity_keys(p: &Prepared, keys: &mut Vec<u64>) {
    match (&p.name.given.syllables, &p.name.family.syllables) {
        (Some(g), Some(f)) => {
            // Family-then-given and given-then-family readings of the whole
            // name, so a name split in the wrong place still shares a key.
            let fg: Vec<Vec<SyllableId>> = f.iter().chain(g).cloned().collect();
            let gf: Vec<Vec<SyllableId>> = g.iter().chain(f).cloned().collect();
            keys.extend(readings(&fg).into_iter().map(|r| key(16, r) | NAME_ONLY));
            keys.extend(readings(&gf).into_iter().map(|r| key(16, r) | NAME_ONLY));
        }
        _ => {
            let (g, f) = (whole_codes(&p.name.given), whole_codes(&p.name.family));
            for a in &g {
                for b in &f {
                    keys.push(key(17, (a.min(b), a.max(b))) | NAME_ONLY);
                }
            }
        }
    }
    if let Some(d) = p.birth_date {
        for c in initial_codes(&p.name.given)
            .into_iter()
            .chain(initial_codes(&p.name.family))
        {
            keys.push(key(14, (d, c)));
        }
    }
    if let Some(s) = &p.street {
        keys.push(key(15, s));
    }
    // Address parts, so a typo in the street name or the name still meets:
    // house number with the street's first letters, and either name part
    // with the postal code.
    if let (Some(n), Some(s)) = (&p.number, &p.street_name) {
        keys.push(key(18, (n, s.chars().take(3).collect::<String>())));
    }
    if let Some(pc) = &p.postal_code {
        for part in [&p.name.given, &p.name.family] {
            if !part.is_empty() {
                keys.push(key(19, (&part.compact, pc)));
            }
        }
    }
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
            let name_only = entries[s].0 & NAME_ONLY != 0;
            let limit = if name_only {
                NAME_BLOCK.min(max_block)
            } else {
                max_block
            };
            block_pairs(records, members, limit, window, name_only)
        })
        .collect();
    // The key entries are not needed any more: free them before the sort
    // (at a million rows they are a quarter of a gigabyte).
    drop(groups);
    drop(entries);
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs.shrink_to_fit();
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
    name_only: bool,
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
    // Sorted neighbourhood: order by a script-independent form of the name
    // (smallest romanization row per syllable, else the letters), compare
    // each record with the next `window` ones.
    if name_only {
        // Everyone here shares the name: order by what else could agree
        // (birth date, company, postal code), missing values last.
        members.sort_by(|x, y| {
            let (p, q) = (&records[*x as usize], &records[*y as usize]);
            secondary_key(p).cmp(&secondary_key(q)).then(x.cmp(y))
        });
    } else {
        let mut sort_keys: Vec<(Vec<u32>, u32)> = members
            .iter()
            .map(|m| (sort_key(&records[*m as usize]), *m))
            .collect();
        sort_keys.sort_unstable();
        members = sort_keys.into_iter().map(|(_, m)| m).collect();
    }
    for (i, a) in members.iter().enumerate() {
        for b in members.iter().skip(i + 1).take(window) {
            out.push(pack(*a, *b));
        }
    }
    out
}

type SecondaryKey<'a> = (
    bool,
    Option<chrono::NaiveDate>,
    bool,
    Option<&'a str>,
    bool,
    Option<&'a str>,
);

fn secondary_key(r: &Prepared) -> SecondaryKey<'_> {
    (
        r.birth_date.is_none(),
        r.birth_date,
        r.company.is_none(),
        r.company.as_deref(),
        r.postal_code.is_none(),
        r.postal_code.as_deref(),
    )
}

fn sort_key(p: &Prepared) -> Vec<u32> {
    let mut out = Vec::with_capacity(8);
    for part in [&p.name.given, &p.name.family] {
        match &part.syllables {
            Some(sylls) => out.extend(
                sylls
                    .iter()
                    .map(|ids| ids.iter().copied().min().map_or(0, u32::from)),
            ),
            None => out.extend(part.compact.chars().map(|c| 0x1_0000 + u32::from(c))),
        }
        out.push(u32::MAX);
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
