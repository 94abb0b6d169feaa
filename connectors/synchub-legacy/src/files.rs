//! Export-file sources (`salesforce`, `hubspot`, `zoho`, `pipedrive`, `csv`):
//! a folder of vendor CSV files, or one file, read page by page.
//!
//! Cursor: `{"file": "Contact.csv", "row": 12000, "line": 12001, "offset": 3456789}`
//! — the next row to read. An object fed by several files (contacts from
//! `Contact.csv` then `Lead.csv`) moves to the next file with
//! `{"file": "Lead.csv"}` when one ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use synchub_core::{Connector, ConnectorError, Cursor, ObjectKind, ObjectSpec, Page};

use crate::csvfile::{CsvFile, CsvPos, LiveReader, RawRow};
use crate::mapping::{glob_match, Compiled, Mapping, Row};
use crate::{LegacyError, LegacyOptions};

/// One file feeding one object.
#[derive(Debug, Clone)]
struct Plan {
    path: PathBuf,
    name: String,
    compiled: Arc<Compiled>,
}

/// A file opened and its columns resolved against the mapping.
struct Opened {
    file: CsvFile,
    live: Mutex<Option<LiveReader>>,
    slots: Vec<crate::mapping::Slot>,
}

/// Reads vendor export files.
pub(crate) struct ExportSource {
    kind: &'static str,
    plans: Vec<(ObjectKind, Vec<Plan>)>,
    opts: LegacyOptions,
    opened: Mutex<HashMap<PathBuf, Arc<Opened>>>,
    /// The folder ZIP exports were unpacked into (removed on drop).
    _unzipped: Option<tempfile::TempDir>,
}

impl ExportSource {
    /// Matches the mapping's sources against the files at `path` (a
    /// folder, one file, or `.zip` exports as downloaded, which are
    /// unpacked to a private temporary folder). A file whose name matches
    /// no source is recognised by its columns when nothing else matched
    /// (a report export saved under any name).
    pub(crate) fn new(
        kind: &'static str,
        path: &Path,
        mapping: &Mapping,
        opts: LegacyOptions,
    ) -> Result<ExportSource, LegacyError> {
        let meta = std::fs::metadata(path).map_err(|e| LegacyError::Path {
            path: path.display().to_string(),
            message: format!("{e} (expected an export folder, a .zip or a .csv file)"),
        })?;
        let listed: Vec<PathBuf> = if meta.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| LegacyError::Path {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let zips: Vec<PathBuf> = listed.iter().filter(|p| is_zip(p)).cloned().collect();
        let mut unzipped = None;
        let mut files: Vec<PathBuf> = listed.into_iter().filter(|p| !is_zip(p)).collect();
        if !zips.is_empty() {
            let dir = tempfile::Builder::new()
                .prefix("synchub-export-")
                .tempdir()
                .map_err(|e| LegacyError::Path {
                    path: std::env::temp_dir().display().to_string(),
                    message: format!("cannot create a folder to unpack the ZIP export into: {e}"),
                })?;
            let mut from: HashMap<String, PathBuf> = HashMap::new();
            for zip in &zips {
                files.extend(unzip(zip, dir.path(), &mut from)?);
            }
            files.sort();
            unzipped = Some(dir);
        }
        let single = files.len() == 1 && !meta.is_dir();
        let compiled: Vec<Arc<Compiled>> = mapping
            .objects
            .iter()
            .map(|object| {
                Arc::new(Compiled::new(
                    mapping,
                    object,
                    opts.default_region.as_deref(),
                ))
            })
            .collect();
        let mut plans: Vec<(ObjectKind, Vec<Plan>)> = Vec::new();
        let mut taken = Vec::new();
        let add = |plans: &mut Vec<(ObjectKind, Vec<Plan>)>, file: &Path, c: &Arc<Compiled>| {
            let plan = Plan {
                path: file.to_path_buf(),
                name: file_name(file),
                compiled: c.clone(),
            };
            match plans.iter_mut().find(|(k, _)| *k == c.kind) {
                Some((_, list)) => list.push(plan),
                None => plans.push((c.kind, vec![plan])),
            }
        };
        for (object, c) in mapping.objects.iter().zip(&compiled) {
            for file in &files {
                let name = file_name(file);
                let matches = glob_match(&object.source, &name)
                    || (single && kind == "csv" && mapping.objects.len() == 1);
                if !matches || taken.contains(file) {
                    continue;
                }
                taken.push(file.clone());
                add(&mut plans, file, c);
            }
        }
        if plans.is_empty() {
            // Nothing by name: recognise the files by their columns.
            let candidates: Vec<&PathBuf> = files
                .iter()
                .filter(|f| single || is_text_export(f))
                .collect();
            let mut unknown = Vec::new();
            for file in candidates {
                let headers = match CsvFile::open(file, opts.encoding) {
                    Ok(f) => f.headers,
                    Err(e) if single => return Err(e),
                    Err(_) => continue,
                };
                let best = compiled
                    .iter()
                    .filter(|c| c.has_telling_id(&headers))
                    .max_by_key(|c| (c.score(&headers), std::cmp::Reverse(c.order)));
                match best {
                    Some(c) => {
                        tracing::info!(file = %file_name(file), object = %c.kind, "export recognised by its columns");
                        add(&mut plans, file, c);
                    }
                    None => unknown.push((file_name(file), headers)),
                }
            }
            if plans.is_empty() {
                let ids: Vec<String> = compiled
                    .iter()
                    .filter_map(|c| c.id_columns())
                    .flatten()
                    .map(|s| format!("'{s}'"))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let wanted: Vec<&str> = mapping.objects.iter().map(|o| o.source.as_str()).collect();
                let seen = match unknown.first() {
                    Some((name, headers)) => format!(
                        "; {name} has columns {} and none of the id columns {}",
                        headers.join(", "),
                        ids.join(", ")
                    ),
                    None => String::new(),
                };
                return Err(LegacyError::Path {
                    path: path.display().to_string(),
                    message: format!(
                        "no {kind} export file found: expected files named {}{seen} (or pass --map to name them)",
                        wanted.join(", ")
                    ),
                });
            }
        }
        Ok(ExportSource {
            kind,
            plans,
            opts,
            opened: Mutex::new(HashMap::new()),
            _unzipped: unzipped,
        })
    }

    fn open(&self, plan: &Plan) -> Result<Arc<Opened>, LegacyError> {
        if let Ok(cache) = self.opened.lock() {
            if let Some(o) = cache.get(&plan.path) {
                return Ok(o.clone());
            }
        }
        let file = CsvFile::open(&plan.path, self.opts.encoding)?;
        plan.compiled
            .check_user_columns(&plan.name, &file.headers)
            .map_err(|message| LegacyError::Mapping {
                source_name: format!("for {}", plan.name),
                message,
            })?;
        if let (false, Some(ids)) = (
            plan.compiled.has_id(&file.headers),
            plan.compiled.id_columns(),
        ) {
            return Err(LegacyError::Mapping {
                source_name: format!("for {}", plan.name),
                message: format!(
                    "the file has none of the id columns '{}' (its columns: {}); name the id column in a --map file",
                    ids.join("', '"),
                    file.headers.join(", ")
                ),
            });
        }
        tracing::info!(file = %plan.name, encoding = %file.detected.encoding.name(), "opened export file");
        let slots = file.headers.iter().map(|h| plan.compiled.slot(h)).collect();
        let opened = Arc::new(Opened {
            file,
            live: Mutex::new(None),
            slots,
        });
        if let Ok(mut cache) = self.opened.lock() {
            cache.insert(plan.path.clone(), opened.clone());
        }
        Ok(opened)
    }

    /// Reads one page (blocking IO; run on a blocking thread).
    fn read(&self, object: ObjectKind, from: Option<&Cursor>) -> Result<Page, LegacyError> {
        let Some((_, plans)) = self.plans.iter().find(|(k, _)| *k == object) else {
            return Ok(Page {
                done: true,
                ..Page::default()
            });
        };
        let (index, pos) = match from {
            None => (0, None),
            Some(cursor) => locate(plans, &cursor.0)?,
        };
        let plan = &plans[index];
        let opened = self.open(plan)?;
        let mut rows = Vec::with_capacity(self.opts.page_size);
        let (next, eof) = {
            // A poisoned lock only means an earlier page failed: start afresh.
            let mut live = opened.live.lock().unwrap_or_else(|p| p.into_inner());
            let result =
                opened
                    .file
                    .read_page(pos, self.opts.page_size.max(1), &mut rows, &mut live);
            if result.is_err() {
                *live = None;
            }
            result?
        };
        let mut page = Page::default();
        for raw in rows {
            map_one(plan, &opened, raw, &mut page);
        }
        if self.opts.skip_deleted {
            page.records.retain(|r| !r.deleted);
        }
        let last = index + 1 == plans.len();
        page.done = eof && last;
        page.next = Some(Cursor(if eof && !last {
            json!({ "file": plans[index + 1].name })
        } else {
            json!({ "file": plan.name, "row": next.row, "line": next.line, "offset": next.offset })
        }));
        Ok(page)
    }
}

fn map_one(plan: &Plan, opened: &Opened, raw: RawRow, page: &mut Page) {
    let location = format!("{} row {} (line {})", plan.name, raw.row, raw.line);
    match raw.values {
        Ok(values) => {
            let cells = opened
                .slots
                .iter()
                .zip(values.iter().map(String::as_str))
                .collect();
            let row = Row {
                cells,
                number: raw.row,
                location,
            };
            match plan.compiled.map_row(&row) {
                Ok(record) => page.records.push(record),
                Err(rejected) => page.rejected.push(*rejected),
            }
        }
        Err(reason) => {
            let raw_json: serde_json::Map<String, Value> = opened
                .file
                .headers
                .iter()
                .cloned()
                .zip(raw.lossy.into_iter().map(Value::String))
                .collect();
            page.rejected.push(synchub_core::Rejected {
                external_id: None,
                location: Some(location),
                reason,
                raw: Value::Object(raw_json),
            });
        }
    }
}

/// Finds the file and position a cursor names.
fn locate(plans: &[Plan], cursor: &Value) -> Result<(usize, Option<CsvPos>), LegacyError> {
    let bad = |message: &str| LegacyError::Cursor {
        cursor: cursor.to_string(),
        message: message.to_string(),
    };
    let file = cursor
        .get("file")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("it has no \"file\""))?;
    let index = plans.iter().position(|p| p.name == file).ok_or_else(|| {
        bad("that file is not part of this export any more; run without --resume")
    })?;
    let pos = match cursor.get("offset") {
        None | Some(Value::Null) => None,
        Some(_) => Some(
            serde_json::from_value::<CsvPos>(cursor.clone()).map_err(|e| bad(&e.to_string()))?,
        ),
    };
    Ok((index, pos))
}

#[async_trait]
impl Connector for ExportSourceHandle {
    fn kind(&self) -> &'static str {
        self.0.kind
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        self.0
            .plans
            .iter()
            .map(|(kind, _)| ObjectSpec {
                kind: *kind,
                can_read: true,
                incremental: false,
                can_write: false,
            })
            .collect()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let this = self.0.clone();
        run_blocking(move || {
            for (_, plans) in &this.plans {
                for plan in plans {
                    this.open(plan)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        let paths: Vec<PathBuf> = self
            .0
            .plans
            .iter()
            .filter(|(kind, _)| *kind == object)
            .flat_map(|(_, plans)| plans.iter().map(|p| p.path.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut total = 0u64;
            for path in paths {
                total += count_lines(&path).ok()?.saturating_sub(1);
            }
            Some(total)
        })
        .await
        .ok()
        .flatten()
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        let this = self.0.clone();
        let from = from.cloned();
        run_blocking(move || this.read(object, from.as_ref())).await
    }
}

/// Line breaks in a file (an estimate of its rows: quoted fields may hold
/// line breaks of their own).
fn count_lines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    // A last line without a line break still counts.
    Ok(lines + u64::from(last != b'\n'))
}

/// The connector handed out by [`crate::build`]: a cheap handle on the source.
pub(crate) struct ExportSourceHandle(pub(crate) Arc<ExportSource>);

pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LegacyError> + Send + 'static,
) -> Result<T, ConnectorError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ConnectorError::from),
        Err(e) => Err(ConnectorError::Io {
            path: "export".into(),
            message: format!("reader task failed: {e}"),
        }),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// Files worth opening to recognise by their columns.
fn is_text_export(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        ["csv", "tsv", "txt"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

/// Unpacks the files of a ZIP export into `into` (flattened to their file
/// names; macOS resource forks skipped). `from` remembers which archive
/// each name came from: a name in two archives is an error.
fn unzip(
    zip: &Path,
    into: &Path,
    from: &mut HashMap<String, PathBuf>,
) -> Result<Vec<PathBuf>, LegacyError> {
    let err = |message: String| LegacyError::Path {
        path: zip.display().to_string(),
        message,
    };
    let file = std::fs::File::open(zip).map_err(|e| err(e.to_string()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err(format!("not a readable ZIP archive: {e}")))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| err(format!("entry {}: {e}", i + 1)))?;
        if entry.is_dir() {
            continue;
        }
        let Some(inner) = entry.enclosed_name() else {
            return Err(err(format!("entry '{}' has an unsafe path", entry.name())));
        };
        if inner.components().any(|c| c.as_os_str() == "__MACOSX") {
            continue;
        }
        let name = file_name(&inner);
        if name.is_empty() || name.starts_with("._") {
            continue;
        }
        if let Some(first) = from.get(&name) {
            return Err(err(format!(
                "{name} is also in {}: pass the archives one at a time",
                first.display()
            )));
        }
        from.insert(name.clone(), zip.to_path_buf());
        let target = into.join(&name);
        let mut writer = std::fs::File::create(&target)
            .map_err(|e| err(format!("unpacking {name} to {}: {e}", target.display())))?;
        std::io::copy(&mut entry, &mut writer)
            .map_err(|e| err(format!("unpacking {name}: {e}")))?;
        out.push(target);
    }
    Ok(out)
}
