//! A small romanization table for the Chinese surnames and given-name
//! characters most common in Taiwan, Hong Kong and mainland China, with their
//! Hanyu Pinyin, Wade–Giles, Hong Kong government (Cantonese) and common
//! Hokkien/Southeast-Asian spellings. `陳大文` = `Chan Tai Man` (HK) =
//! `Chen Da Wen` (Pinyin) = `Chen Ta Wen` (Wade–Giles).
//!
//! Each row gives the traditional and simplified forms of one character and
//! its spellings; a character or a Latin syllable resolves to row ids, and two
//! name parts are romanization-equivalent when their syllables share row ids
//! position by position. Characters outside the table compare literally.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;

/// Row id of a character in the table.
pub type SyllableId = u16;

/// `chars:spellings` rows. Surnames first (ids below [`SURNAME_ROWS`]).
const SURNAMES: &[&str] = &[
    "陳陈:chen,chan,chin,tan",
    "林:lin,lam,lim",
    "黃黄:huang,wong,hwang,ng,ooi",
    "張张:zhang,chang,cheung,teo",
    "李:li,lee,lei",
    "王:wang,wong,ong",
    "吳吴:wu,ng,goh,woo",
    "劉刘:liu,lau,lao,lew",
    "蔡:cai,tsai,choi,chua,choy",
    "楊杨:yang,yeung,young,yeo",
    "許许:xu,hsu,hui,koh",
    "鄭郑:zheng,cheng,chang,tay",
    "謝谢:xie,hsieh,tse,chia",
    "郭:guo,kuo,kwok,kok",
    "洪:hong,hung,ang",
    "曾:zeng,tseng,tsang",
    "周:zhou,chou,chow,chau",
    "何:he,ho,hoh",
    "梁:liang,leung,neo",
    "趙赵:zhao,chao,chiu",
    "馬马:ma,mah",
    "朱:zhu,chu,chue",
    "胡:hu,wu,oh",
    "高:gao,kao,ko",
    "羅罗:luo,lo,law",
    "孫孙:sun,suen",
    "徐:xu,hsu,tsui,chui",
    "葉叶:ye,yeh,yip,ip",
    "蕭萧:xiao,hsiao,siu",
    "鄧邓:deng,teng,tang",
    "歐陽欧阳:ouyang,auyeung",
    "司馬司马:sima,szuma,szema",
    "諸葛诸葛:zhuge,chuko",
    "上官上官:shangguan,sheungkwun",
    "唐:tang,tong",
    "范:fan,faan",
    "廖:liao,liu,liew",
];

const GIVEN: &[&str] = &[
    "大:da,ta,tai,dai",
    "文:wen,man",
    "小:xiao,hsiao,siu",
    "明:ming",
    "偉伟:wei,wai",
    "華华:hua,hwa,wah",
    "志:zhi,chih,chi",
    "強强:qiang,chiang,keung",
    "美:mei,mi",
    "玲:ling",
    "麗丽:li,lai",
    "家:jia,chia,ka",
    "豪:hao,hau,ho",
    "俊:jun,chun,tsun",
    "傑杰:jie,chieh,kit",
    "建:jian,chien,kin",
    "國国:guo,kuo,kwok",
    "怡:yi,i,yee",
    "婷:ting",
    "雅:ya,nga",
    "欣:xin,hsin,yan",
    "宇:yu,yue",
    "晴:qing,ching",
    "思:si,ssu,sze",
    "子:zi,tzu,tsz",
    "敏:min,man",
    "慧:hui,wai",
    "君:jun,chun,kwan",
    "安:an,on",
    "德:de,te,tak",
    "天:tian,tien,tin",
    "浩:hao,ho",
    "榮荣:rong,jung,wing",
    "秀:xiu,hsiu,sau",
    "芳:fang,fong",
    "淑:shu,suk",
    "英:ying",
    "珍:zhen,chen,chun",
    "光:guang,kuang,kwong",
    "輝辉:hui,hwei,fai",
    "立:li,lap",
    "平:ping",
    "春:chun,chuen",
    "海:hai,hoi",
    "龍龙:long,lung",
    "雲云:yun,wan",
    "新:xin,hsin,san",
    "中:zhong,chung",
];

struct Table {
    by_char: FxHashMap<char, SyllableId>,
    by_compound: FxHashMap<String, SyllableId>,
    by_spelling: FxHashMap<&'static str, Vec<SyllableId>>,
    spellings: Vec<Vec<&'static str>>,
    surname_rows: usize,
    max_spelling: usize,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut by_char = FxHashMap::default();
        let mut by_spelling: FxHashMap<&'static str, Vec<SyllableId>> = FxHashMap::default();
        let mut by_compound = FxHashMap::default();
        let mut max_spelling = 0;
        let mut spellings_of: Vec<Vec<&'static str>> = Vec::new();
        for (row, line) in SURNAMES.iter().chain(GIVEN).enumerate() {
            let id = SyllableId::try_from(row).unwrap_or(SyllableId::MAX);
            let (chars, spellings) = line.split_once(':').unwrap_or((line, ""));
            let cs: Vec<char> = chars.chars().collect();
            if cs.len() == 4 {
                // A compound surname: traditional pair then simplified pair (歐陽欧阳).
                by_compound.insert(cs[..2].iter().collect(), id);
                by_compound.insert(cs[2..].iter().collect(), id);
            } else {
                for c in cs {
                    by_char.entry(c).or_insert(id);
                }
            }
            for sp in spellings.split(',') {
                max_spelling = max_spelling.max(sp.len());
                by_spelling.entry(sp).or_default().push(id);
            }
            spellings_of.push(spellings.split(',').filter(|s| !s.is_empty()).collect());
        }
        Table {
            spellings: spellings_of,
            by_char,
            by_compound,
            by_spelling,
            surname_rows: SURNAMES.len(),
            max_spelling,
        }
    })
}

/// The row of a Chinese character, traditional or simplified.
pub fn han_id(c: char) -> Option<SyllableId> {
    table().by_char.get(&c).copied()
}

/// The row of a two-character compound surname (`歐陽`, `欧阳`).
pub fn compound_surname_id(s: &str) -> Option<SyllableId> {
    table().by_compound.get(s).copied()
}

/// Rows a lower-case Latin syllable can spell (`chan` → 陳; `wong` → 黃, 王).
pub fn syllable_ids(syllable: &str) -> &'static [SyllableId] {
    table()
        .by_spelling
        .get(syllable)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The Latin spellings of a row (`陳` → chen, chan, chin, tan).
pub fn spellings(id: SyllableId) -> &'static [&'static str] {
    table()
        .spellings
        .get(usize::from(id))
        .map_or(&[], Vec::as_slice)
}

/// True when a row is a surname row.
pub fn is_surname_id(id: SyllableId) -> bool {
    usize::from(id) < table().surname_rows
}

/// True when the lower-case Latin word spells a surname in the table.
pub fn is_surname_spelling(word: &str) -> bool {
    let t = table();
    syllable_ids(word)
        .iter()
        .any(|id| usize::from(*id) < t.surname_rows)
}

/// Split a lower-case Latin word with no spaces into known syllables
/// (`taiman` → `tai`, `man`), preferring the fewest pieces. `None` when it
/// cannot be split entirely into known syllables.
pub fn segment(word: &str) -> Option<Vec<&str>> {
    let t = table();
    let n = word.len();
    if n == 0 || n > 24 || !word.is_ascii() {
        return None;
    }
    // best[i] = (pieces, previous cut) for word[..i].
    let mut best: Vec<Option<(usize, usize)>> = vec![None; n + 1];
    best[0] = Some((0, 0));
    for end in 1..=n {
        for start in end.saturating_sub(t.max_spelling)..end {
            if let Some((k, _)) = best[start] {
                if t.by_spelling.contains_key(&word[start..end])
                    && best[end].is_none_or(|(bk, _)| k + 1 < bk)
                {
                    best[end] = Some((k + 1, start));
                }
            }
        }
    }
    best[n]?;
    let mut pieces = Vec::new();
    let mut end = n;
    while end > 0 {
        let (_, start) = best[end]?;
        pieces.push(&word[start..end]);
        end = start;
    }
    pieces.reverse();
    Some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_and_simplified_share_a_row() {
        assert!(han_id('陳').is_some());
        assert_eq!(han_id('陳'), han_id('陈'));
        assert_eq!(han_id('x'), None);
        assert!(compound_surname_id("歐陽").is_some());
        assert_eq!(compound_surname_id("歐陽"), compound_surname_id("欧阳"));
    }

    #[test]
    fn spellings_resolve_to_rows() {
        let chen = han_id('陳').unwrap_or_default();
        assert!(syllable_ids("chan").contains(&chen));
        assert!(syllable_ids("chen").contains(&chen));
        assert!(
            syllable_ids("wong").len() >= 2,
            "wong spells both 黃 and 王"
        );
        assert!(is_surname_spelling("cheung"));
        assert!(!is_surname_spelling("man"));
    }

    #[test]
    fn segments_joined_syllables() {
        assert_eq!(segment("taiman"), Some(vec!["tai", "man"]));
        assert_eq!(segment("dawen"), Some(vec!["da", "wen"]));
        assert_eq!(segment("xyz"), None);
    }
}
