//! Countries as records write them (`HK`, `HKG`, `Hong Kong`, `香港`,
//! `Taiwan, R.O.C.`, `台灣`, `中国`) to ISO 3166-1 alpha-2 codes, so that a
//! record's own address can decide how its national phone numbers are read.

use super::clean_text;

/// Names and alpha-3 codes of the countries the customers behind synchub
/// mostly live in; any valid alpha-2 code is accepted as well.
const NAMES: &[(&str, &[&str])] = &[
    (
        "TW",
        &[
            "twn",
            "taiwan",
            "taiwan, r.o.c.",
            "taiwan roc",
            "republic of china",
            "r.o.c.",
            "roc",
            "台灣",
            "臺灣",
            "台湾",
            "中華民國",
            "中华民国",
        ],
    ),
    (
        "HK",
        &[
            "hkg",
            "hong kong",
            "hongkong",
            "hong kong sar",
            "hong kong sar china",
            "香港",
            "香港特別行政區",
            "香港特别行政区",
        ],
    ),
    (
        "CN",
        &[
            "chn",
            "china",
            "mainland china",
            "prc",
            "p.r.c.",
            "people's republic of china",
            "中国",
            "中國",
            "中国大陆",
            "中國大陸",
            "大陆",
            "大陸",
        ],
    ),
    ("MO", &["mac", "macau", "macao", "澳門", "澳门"]),
    ("SG", &["sgp", "singapore", "新加坡"]),
    ("MY", &["mys", "malaysia", "馬來西亞", "马来西亚"]),
    ("JP", &["jpn", "japan", "日本"]),
    (
        "KR",
        &[
            "kor",
            "korea",
            "south korea",
            "republic of korea",
            "韓國",
            "韩国",
        ],
    ),
    (
        "US",
        &[
            "usa",
            "u.s.",
            "u.s.a.",
            "united states",
            "united states of america",
            "美國",
            "美国",
        ],
    ),
    (
        "GB",
        &[
            "gbr",
            "uk",
            "u.k.",
            "united kingdom",
            "great britain",
            "england",
            "scotland",
            "wales",
            "英國",
            "英国",
        ],
    ),
    ("AU", &["aus", "australia", "澳洲", "澳大利亞", "澳大利亚"]),
    ("NZ", &["nzl", "new zealand", "紐西蘭", "新西兰"]),
    ("CA", &["can", "canada", "加拿大"]),
    ("DE", &["deu", "germany", "deutschland", "德國", "德国"]),
    ("FR", &["fra", "france", "法國", "法国"]),
];

/// The ISO 3166-1 alpha-2 code of a country as written, or `None` when it
/// is not recognised.
pub fn country_code(written: &str) -> Option<String> {
    let text = clean_text(written).to_lowercase();
    if text.is_empty() {
        return None;
    }
    let bare = text.trim_end_matches('.');
    if let Some((code, _)) = NAMES
        .iter()
        .find(|(_, names)| names.contains(&text.as_str()) || names.contains(&bare))
    {
        return Some((*code).to_string());
    }
    let text = bare;
    if text.len() == 2 && text.is_ascii() {
        let upper = text.to_ascii_uppercase();
        if upper.parse::<phonenumber::country::Id>().is_ok() {
            return Some(upper);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_as_records_write_them() {
        for (written, code) in [
            ("HK", "HK"),
            ("hk", "HK"),
            ("HKG", "HK"),
            ("Hong Kong SAR", "HK"),
            ("香港", "HK"),
            ("Taiwan, R.O.C.", "TW"),
            ("臺灣", "TW"),
            ("中国", "CN"),
            ("ＣＮ", "CN"),
            ("United States", "US"),
            ("SG", "SG"),
            ("de", "DE"),
        ] {
            assert_eq!(country_code(written).as_deref(), Some(code), "{written}");
        }
        for written in ["", "Atlantis", "XX", "n/a"] {
            assert_eq!(country_code(written), None, "{written}");
        }
    }
}
