//! Person names: NFKC and case folding, honorifics and titles, nicknames,
//! CJK names written with no space between family and given name, and
//! romanized Chinese names in either order. [`PersonName`] is the parsed form
//! the matcher compares; [`normalize_name`] is the plain comparison string.

use serde::{Deserialize, Serialize};

use super::romanize::{
    compound_surname_id, han_id, is_surname_id, is_surname_spelling, segment, spellings,
    syllable_ids, SyllableId,
};
use super::{fold, is_han};

const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mme", "jr", "sr", "ii", "iii",
    "phd", "md", "esq", "先生", "小姐", "女士", "太太", "博士", "教授", "醫生", "医生", "經理",
    "经理",
];

const NICKNAMES: &[(&str, &str)] = &[
    ("bill", "william"),
    ("billy", "william"),
    ("will", "william"),
    ("willy", "william"),
    ("bob", "robert"),
    ("bobby", "robert"),
    ("rob", "robert"),
    ("robbie", "robert"),
    ("liz", "elizabeth"),
    ("lizzie", "elizabeth"),
    ("beth", "elizabeth"),
    ("betty", "elizabeth"),
    ("eliza", "elizabeth"),
    ("jim", "james"),
    ("jimmy", "james"),
    ("mike", "michael"),
    ("mick", "michael"),
    ("kate", "katherine"),
    ("katie", "katherine"),
    ("kathy", "katherine"),
    ("cathy", "katherine"),
    ("catherine", "katherine"),
    ("tom", "thomas"),
    ("tommy", "thomas"),
    ("dick", "richard"),
    ("rick", "richard"),
    ("ricky", "richard"),
    ("tony", "anthony"),
    ("jenny", "jennifer"),
    ("jen", "jennifer"),
    ("peggy", "margaret"),
    ("maggie", "margaret"),
    ("meg", "margaret"),
    ("sue", "susan"),
    ("susie", "susan"),
    ("chris", "christopher"),
    ("dave", "david"),
    ("dan", "daniel"),
    ("danny", "daniel"),
    ("joe", "joseph"),
    ("joey", "joseph"),
    ("sam", "samuel"),
    ("alex", "alexander"),
    ("andy", "andrew"),
    ("drew", "andrew"),
    ("ben", "benjamin"),
    ("nick", "nicholas"),
    ("matt", "matthew"),
    ("steve", "stephen"),
    ("steven", "stephen"),
    ("ed", "edward"),
    ("eddie", "edward"),
    ("ted", "edward"),
    ("pat", "patricia"),
    ("patty", "patricia"),
    ("debbie", "deborah"),
    ("vicky", "victoria"),
    ("jon", "jonathan"),
    ("johnny", "john"),
    ("jack", "john"),
    ("larry", "lawrence"),
    ("charlie", "charles"),
    ("chuck", "charles"),
    ("greg", "gregory"),
    ("jeff", "jeffrey"),
    ("ken", "kenneth"),
    ("kenny", "kenneth"),
    ("tim", "timothy"),
    ("fred", "frederick"),
    ("abby", "abigail"),
    ("mandy", "amanda"),
    ("becky", "rebecca"),
    ("jess", "jessica"),
];

/// How closely two name parts agree, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameLevel {
    /// The same after normalization.
    Exact,
    /// Equivalent spellings: a nickname, or the same Chinese name romanized differently.
    Equivalent,
    /// A likely typo (Jaro–Winkler similarity of at least 0.9).
    Close,
    /// One side is an initial of the other.
    Initial,
    /// Disagree.
    Different,
    /// One side is empty.
    Missing,
}

/// One part of a name (given or family) in comparison form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamePart {
    /// Folded text with no spaces or punctuation; nicknames mapped to the full name.
    pub compact: String,
    /// Candidate romanization-table rows per syllable, when every syllable is known.
    pub syllables: Option<Vec<Vec<SyllableId>>>,
}

impl NamePart {
    fn new(tokens: &[String], given: bool) -> Self {
        let joined: String = tokens.concat();
        // Nicknames map to the full name on both parts: first and last names
        // are often swapped, and a family name in the nickname table is rare.
        let _ = given;
        let compact = match tokens {
            [one] => canonical_given(one).to_string(),
            _ => joined,
        };
        NamePart {
            compact,
            syllables: syllables_of(tokens),
        }
    }

    /// True when the part is empty.
    pub fn is_empty(&self) -> bool {
        self.compact.is_empty()
    }

    /// First character, for blocking and initials.
    pub fn initial(&self) -> Option<char> {
        self.compact.chars().next()
    }
}

/// A parsed person name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonName {
    /// Given name(s).
    pub given: NamePart,
    /// Family name.
    pub family: NamePart,
}

impl PersonName {
    /// Parse from the structured parts when present, else from the full name.
    pub fn parse(given: Option<&str>, family: Option<&str>, full: Option<&str>) -> Self {
        let g = given.map(name_tokens).unwrap_or_default();
        let f = family.map(name_tokens).unwrap_or_default();
        if !g.is_empty() || !f.is_empty() {
            return PersonName {
                given: NamePart::new(&g, true),
                family: NamePart::new(&f, false),
            };
        }
        let Some(full) = full else {
            return PersonName::default();
        };
        let (g, f) = split_full_name(full);
        PersonName {
            given: NamePart::new(&g, true),
            family: NamePart::new(&f, false),
        }
    }

    /// True when there is no name at all.
    pub fn is_empty(&self) -> bool {
        self.given.is_empty() && self.family.is_empty()
    }

    /// Compare with another name, trying both orders (first/last swapped);
    /// returns `(given, family, swapped)`.
    pub fn compare(&self, other: &PersonName) -> (NameLevel, NameLevel, bool) {
        let straight = (
            compare_parts(&self.given, &other.given),
            compare_parts(&self.family, &other.family),
        );
        if straight == (NameLevel::Exact, NameLevel::Exact) {
            return (straight.0, straight.1, false);
        }
        let swapped = (
            compare_parts(&self.given, &other.family),
            compare_parts(&self.family, &other.given),
        );
        let rank = |(g, f): (NameLevel, NameLevel)| g as u8 + f as u8;
        let best = if rank(swapped) < rank(straight) {
            (swapped.0, swapped.1, true)
        } else {
            (straight.0, straight.1, false)
        };
        let equivalent = (NameLevel::Equivalent, NameLevel::Equivalent);
        if rank((best.0, best.1)) > rank(equivalent) && self.same_syllables_resplit(other) {
            return (equivalent.0, equivalent.1, best.2);
        }
        best
    }

    /// True when both names are fully known Chinese syllables and read the
    /// same once the family/given boundary is ignored: `Hui Yun Huang`
    /// (parsed family-first as 許/雲黃) and `黃慧雲`, or `强强罗` (given name
    /// written first, no space) and `Qiang-qiang Luo`.
    fn same_syllables_resplit(&self, other: &PersonName) -> bool {
        let (Some(ag), Some(af), Some(bg), Some(bf)) = (
            &self.given.syllables,
            &self.family.syllables,
            &other.given.syllables,
            &other.family.syllables,
        ) else {
            return false;
        };
        if af.len() + ag.len() != bf.len() + bg.len() {
            return false;
        }
        // Without allocating: walk the two concatenations side by side.
        let same = |x: (&[Vec<SyllableId>], &[Vec<SyllableId>]),
                    y: (&[Vec<SyllableId>], &[Vec<SyllableId>])| {
            x.0.iter()
                .chain(x.1)
                .zip(y.0.iter().chain(y.1))
                .all(|(p, q)| p.iter().any(|i| q.contains(i)))
        };
        same((af, ag), (bf, bg)) || same((af, ag), (bg, bf)) || same((ag, af), (bf, bg))
    }
}

/// The comparison form of a whole name: folded, honorifics and punctuation
/// removed, single spaces; CJK names lose their inner spaces (`陳 大文` → `陳大文`).
pub fn normalize_name(raw: &str) -> String {
    let tokens = name_tokens(raw);
    if tokens.iter().all(|t| t.chars().all(is_han)) {
        tokens.concat()
    } else {
        tokens.join(" ")
    }
}

/// Folded name tokens with honorifics, titles and punctuation removed. A run
/// of Han characters is one token.
pub fn name_tokens(raw: &str) -> Vec<String> {
    let folded = fold(raw);
    let mut tokens = Vec::new();
    let mut cur = String::new();
    for c in folded.chars() {
        if c.is_alphanumeric() {
            if !cur.is_empty() && is_han(c) != cur.chars().last().is_some_and(is_han) {
                tokens.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        } else if c == '\'' || c == '’' {
            continue;
        } else if !cur.is_empty() {
            tokens.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    for t in tokens {
        let t = strip_han_honorific(&t);
        if !t.is_empty() && !HONORIFICS.contains(&t.as_str()) {
            out.push(t);
        }
    }
    // Han tokens separated by a space are one name (陳 大文).
    if out.len() > 1 && out.iter().all(|t| t.chars().all(is_han)) {
        return vec![out.concat()];
    }
    out
}

fn strip_han_honorific(t: &str) -> String {
    for h in HONORIFICS.iter().filter(|h| !h.is_ascii()) {
        if let Some(rest) = t.strip_suffix(h) {
            return rest.to_string();
        }
    }
    t.to_string()
}

/// Split a full name into (given, family) tokens: `陳大文` → (大文, 陳);
/// `Chan Tai Man` → (tai man, chan); `Jane Doe` → (jane, doe); `Doe, Jane` → (jane, doe).
pub fn split_full_name(full: &str) -> (Vec<String>, Vec<String>) {
    if let Some((family, given)) = full.split_once(',') {
        return (name_tokens(given), name_tokens(family));
    }
    // `Hui-fang Liu`: a hyphen joins the syllables of a given name, so the
    // other word is the family name even when the first syllable could
    // spell a surname (許 is `Hui` in Cantonese).
    let words: Vec<&str> = full.split_whitespace().collect();
    if let [a, b] = words.as_slice() {
        let hyphenated = |w: &str| w.contains('-') && w.is_ascii();
        if hyphenated(a) != hyphenated(b) {
            let (given, family) = if hyphenated(a) { (a, b) } else { (b, a) };
            let (g, f) = (name_tokens(given), name_tokens(family));
            if !g.is_empty() && f.len() == 1 {
                return (g, f);
            }
        }
    }
    let tokens = name_tokens(full);
    match tokens.as_slice() {
        [] => (vec![], vec![]),
        [one] if one.chars().all(is_han) => {
            let chars: Vec<char> = one.chars().collect();
            let cut = if chars.len() >= 3
                && compound_surname_id(&one.chars().take(2).collect::<String>()).is_some()
            {
                2
            } else {
                1
            };
            if let Some(split) = given_first_han(&chars) {
                return split;
            }
            let family: String = chars[..cut.min(chars.len())].iter().collect();
            let given: String = chars[cut.min(chars.len())..].iter().collect();
            (
                if given.is_empty() {
                    vec![]
                } else {
                    vec![given]
                },
                vec![family],
            )
        }
        [one] => (vec![one.clone()], vec![]),
        [first, rest @ ..] => {
            let last = &tokens[tokens.len() - 1];
            let family_first = is_surname_spelling(first)
                && (!is_surname_spelling(last)
                    || (tokens.len() >= 3 && tokens.iter().all(|t| !syllable_ids(t).is_empty())));
            if family_first {
                (rest.to_vec(), vec![first.clone()])
            } else {
                (tokens[..tokens.len() - 1].to_vec(), vec![last.clone()])
            }
        }
    }
}

/// `大文陳`: a Han name whose first character is a known given-name
/// character and whose end is a known surname was written given name first.
fn given_first_han(chars: &[char]) -> Option<(Vec<String>, Vec<String>)> {
    if chars.len() < 2 {
        return None;
    }
    let first_is_given = han_id(chars[0]).is_some_and(|id| !is_surname_id(id));
    if !first_is_given {
        return None;
    }
    let n = chars.len();
    let tail2: String = chars[n.saturating_sub(2)..].iter().collect();
    let cut = if n >= 3 && compound_surname_id(&tail2).is_some() {
        n - 2
    } else if han_id(chars[n - 1]).is_some_and(is_surname_id) {
        n - 1
    } else {
        return None;
    };
    Some((
        vec![chars[..cut].iter().collect()],
        vec![chars[cut..].iter().collect()],
    ))
}

fn canonical_given(token: &str) -> &str {
    NICKNAMES
        .iter()
        .find(|(n, _)| *n == token)
        .map_or(token, |(_, c)| c)
}

fn syllables_of(tokens: &[String]) -> Option<Vec<Vec<SyllableId>>> {
    let mut out = Vec::new();
    for t in tokens {
        if t.chars().all(is_han) {
            let chars: Vec<char> = t.chars().collect();
            let mut i = 0;
            while i < chars.len() {
                if i + 1 < chars.len() {
                    let pair: String = chars[i..i + 2].iter().collect();
                    if let Some(id) = compound_surname_id(&pair) {
                        out.push(vec![id]);
                        i += 2;
                        continue;
                    }
                }
                out.push(vec![han_id(chars[i])?]);
                i += 1;
            }
        } else if !syllable_ids(t).is_empty() {
            out.push(syllable_ids(t).to_vec());
        } else {
            for piece in segment(t)? {
                out.push(syllable_ids(piece).to_vec());
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Most readings of a Han name part tried against a romanized one.
const MAX_READINGS: usize = 64;

/// True when `han` is written in Han characters of the table and `latin`
/// (four letters or more) is one edit away from one of its readings:
/// `明家` and `Minggka` (a typo of `Mingka`). A typo in a romanized name
/// otherwise makes it look like a different person.
fn typo_of_a_reading(han: &NamePart, latin: &NamePart) -> bool {
    if latin.compact.len() < 4 || !latin.compact.is_ascii() || han.compact.is_ascii() {
        return false;
    }
    let Some(sylls) = han.syllables.as_ref() else {
        return false;
    };
    let mut readings: Vec<String> = vec![String::new()];
    for ids in sylls {
        let mut next = Vec::new();
        for r in &readings {
            for sp in ids.iter().flat_map(|id| spellings(*id)) {
                if next.len() < MAX_READINGS {
                    next.push(format!("{r}{sp}"));
                }
            }
        }
        readings = next;
    }
    readings.iter().any(|r| {
        r.len().abs_diff(latin.compact.len()) <= 1
            && strsim::damerau_levenshtein(r, &latin.compact) <= 1
    })
}

/// Compare two name parts.
pub fn compare_parts(a: &NamePart, b: &NamePart) -> NameLevel {
    if a.is_empty() || b.is_empty() {
        return NameLevel::Missing;
    }
    if a.compact == b.compact {
        return NameLevel::Exact;
    }
    if let (Some(sa), Some(sb)) = (&a.syllables, &b.syllables) {
        if sa.len() == sb.len()
            && sa
                .iter()
                .zip(sb)
                .all(|(x, y)| x.iter().any(|i| y.contains(i)))
        {
            return NameLevel::Equivalent;
        }
    }
    let chars = |s: &str| {
        if s.is_ascii() {
            s.len()
        } else {
            s.chars().count()
        }
    };
    let (ca, cb) = (chars(&a.compact), chars(&b.compact));
    if ca == 1 || cb == 1 {
        return if a.initial() == b.initial() {
            NameLevel::Initial
        } else {
            NameLevel::Different
        };
    }
    if ca.min(cb) >= 3
        && crate::matcher::compare::jaro_winkler_at_least(&a.compact, &b.compact, 0.9)
    {
        return NameLevel::Close;
    }
    if typo_of_a_reading(a, b) || typo_of_a_reading(b, a) {
        return NameLevel::Close;
    }
    if ca.min(cb) == 2
        && strsim::damerau_levenshtein(&a.compact, &b.compact) <= 1
        && a.initial() == b.initial()
    {
        return NameLevel::Close;
    }
    if is_truncation(&a.compact, &b.compact) {
        return NameLevel::Initial;
    }
    NameLevel::Different
}

/// A short form made by cutting a Latin name, as most pet names are: the
/// shorter starts with the longer's first three letters (`tim`/`timothy`,
/// `maddie`/`madison`; a two-letter short form with its first two:
/// `mo`/`mohammed`), or is its last four letters or more (`becca`/`rebecca`).
/// Weaker than an initial-level match would suggest, so it shares that level
/// and its fitted weight rather than counting as a typo.
fn is_truncation(a: &str, b: &str) -> bool {
    if !(a.bytes().all(|c| c.is_ascii_lowercase()) && b.bytes().all(|c| c.is_ascii_lowercase())) {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() < 2 || short.len() == long.len() {
        return false;
    }
    let head = short.len().min(3);
    (long.starts_with(&short[..head]) && (short.len() >= 3 || long.len() >= 5))
        || (short.len() >= 4 && long.ends_with(short))
}

#[cfg(test)]
#[path = "name_tests.rs"]
mod tests;
