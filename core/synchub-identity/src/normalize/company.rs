//! Company names: legal suffixes (Ltd, Inc, GmbH, 有限公司, 股份有限公司...)
//! and punctuation removed so that `ACME Co., Ltd.` = `Acme`.

use super::fold;

const LATIN_SUFFIXES: &[&str] = &[
    "limited",
    "ltd",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "llc",
    "llp",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "sarl",
    "bv",
    "nv",
    "pte",
    "pty",
    "kk",
    "oy",
    "ab",
    "srl",
    "spa",
    "holdings",
    "group",
];

const HAN_SUFFIXES: &[&str] = &[
    "股份有限公司",
    "有限责任公司",
    "有限責任公司",
    "有限公司",
    "集團",
    "集团",
    "公司",
    "企業社",
    "商行",
];

/// Normalize a company name for comparison.
pub fn normalize_company(raw: &str) -> String {
    let folded = fold(raw);
    let mut s: String = folded
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    loop {
        let trimmed = s.trim_end().to_string();
        let mut changed = false;
        for suf in HAN_SUFFIXES {
            if let Some(rest) = trimmed.strip_suffix(suf) {
                s = rest.to_string();
                changed = true;
                break;
            }
        }
        if !changed {
            let mut words: Vec<&str> = trimmed.split_whitespace().collect();
            if words.len() > 1 && words.last().is_some_and(|w| LATIN_SUFFIXES.contains(w)) {
                words.pop();
                s = words.join(" ");
                changed = true;
            }
        }
        if !changed {
            return trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_suffixes() {
        assert_eq!(normalize_company("ACME Co., Ltd."), "acme");
        assert_eq!(normalize_company("Acme Inc"), "acme");
        assert_eq!(normalize_company("Müller GmbH"), "muller");
        assert_eq!(normalize_company("Limited"), "limited");
    }

    #[test]
    fn han_suffixes() {
        assert_eq!(
            normalize_company("台灣積體電路製造股份有限公司"),
            "台灣積體電路製造"
        );
        assert_eq!(normalize_company("大文貿易有限公司"), "大文貿易");
        assert_eq!(normalize_company("ＡＢＣ 有限公司"), "abc");
    }

    #[test]
    fn han_suffix_variants_compare_equal() {
        // Traditional and simplified, with and without 股份, full-width
        // brackets and spaces: all the same company.
        let stem = normalize_company("長榮");
        for raw in [
            "長榮股份有限公司",
            "長榮有限公司",
            "長榮 股份有限公司",
            "長榮（股份有限公司）",
            "長榮公司",
        ] {
            assert_eq!(normalize_company(raw), stem, "{raw}");
        }
        assert_eq!(normalize_company("华为技术有限公司"), "华为技术");
        assert_eq!(normalize_company("阿里巴巴集团"), "阿里巴巴");
        assert_eq!(
            normalize_company("ACME Co., Ltd."),
            normalize_company("Acme 有限公司")
        );
    }
}
