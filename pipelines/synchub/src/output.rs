//! Output for people and for programs: aligned tables or JSON, written so
//! that a closed pipe (`synchub status | head -1`) ends the command quietly.

use std::io::Write;

use clap::ValueEnum;

/// How a listing command prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// One JSON document on stdout.
    Json,
}

/// The reader of stdout went away; the command stops without an error.
#[derive(Debug)]
pub struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for ClosedPipe {}

/// Writes `text` to stdout; a closed pipe becomes [`ClosedPipe`].
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        Err(e) => Err(anyhow::anyhow!("cannot write to stdout: {e}")),
    }
}

/// Prints a value as pretty JSON followed by a newline.
pub fn emit_json(value: &serde_json::Value) -> anyhow::Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// True when an error chain ends in a closed stdout.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<ClosedPipe>()
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Turns a panic of `println!` on a closed stdout (in commands that print
/// directly) into a quiet exit; every other panic keeps the default report.
pub fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// A table with a header row; columns are padded to the widest cell, CJK
/// characters counting as two columns.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, each line indented by `indent` spaces.
    pub fn render(&self, indent: usize) -> String {
        let width = display_width;
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(width(cell));
                }
            }
        }
        let pad = " ".repeat(indent);
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(self.rows.iter()) {
            let mut line = pad.clone();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let w = widths.get(i).copied().unwrap_or(0);
                    line.push_str(&" ".repeat(w.saturating_sub(width(cell)) + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Terminal columns of a text: East Asian wide and full-width characters
/// (陳, ＡＢＣ, 한) take two.
pub fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| {
            let u = u32::from(c);
            let wide = matches!(u,
                0x1100..=0x115F
                | 0x2E80..=0xA4CF
                | 0xAC00..=0xD7A3
                | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F
                | 0xFF00..=0xFF60
                | 0xFFE0..=0xFFE6
                | 0x20000..=0x3FFFD);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// A stored JSON text shown as JSON (`"陳"`, `["a@x.tw"]`), not re-encoded.
pub fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// A JSON value in at most `max` characters.
pub fn short(value: &serde_json::Value, max: usize) -> String {
    let text = match value {
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    truncate(&text, max)
}

/// `text` cut to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// How long ago an RFC 3339 time was: `45s`, `12m`, `5h`, `3d`.
pub fn age(rfc3339: &str) -> String {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return "?".into();
    };
    let secs = age_seconds_of(at.with_timezone(&chrono::Utc));
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// Seconds since an RFC 3339 time (0 when it cannot be read).
pub fn age_seconds(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|at| age_seconds_of(at.with_timezone(&chrono::Utc)))
        .unwrap_or(0)
}

fn age_seconds_of(at: chrono::DateTime<chrono::Utc>) -> i64 {
    let now = chrono::Utc::now();
    (now - at).num_seconds().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_values_are_not_double_encoded() {
        let mut t = Table::new(&["ID", "FIELD"]);
        t.row(vec!["1".into(), "company".into()]);
        t.row(vec!["12".into(), "x".into()]);
        assert_eq!(t.render(0), "ID  FIELD\n1   company\n12  x\n");
        assert_eq!(json_value("\"陳\"").to_string(), "\"陳\"");
        assert_eq!(truncate("abcdef", 4), "abc…");
        let mut t = Table::new(&["WHO", "X"]);
        t.row(vec!["陳大文".into(), "1".into()]);
        t.row(vec!["Ann".into(), "2".into()]);
        assert_eq!(t.render(0), "WHO     X\n陳大文  1\nAnn     2\n");
    }
}
