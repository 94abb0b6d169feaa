//! The uid → message index: which message each UID of a folder was, so an
//! expunge (reported by UID only: `VANISHED`) becomes the deletion of the
//! right activity. A UID names one message for the life of a UIDVALIDITY,
//! so entries are facts that never change: the file is append-only and may
//! hold entries of pages the store never committed without harm.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The index of one connection: one file per (folder, UIDVALIDITY).
#[derive(Debug)]
pub struct UidIndex {
    dir: PathBuf,
    loaded: HashMap<(String, u32), HashMap<u32, String>>,
}

impl UidIndex {
    /// The index kept in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        UidIndex {
            dir,
            loaded: HashMap::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, folder: &str, uidvalidity: u32) -> PathBuf {
        let h = hex::encode(Sha256::digest(folder.as_bytes()));
        self.dir.join(format!("{}-{uidvalidity}.tsv", &h[..16]))
    }

    fn load(
        &mut self,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<&mut HashMap<u32, String>, String> {
        let key = (folder.to_string(), uidvalidity);
        if !self.loaded.contains_key(&key) {
            let path = self.path(folder, uidvalidity);
            let map = read(&path)?;
            self.loaded.insert(key.clone(), map);
        }
        self.loaded
            .get_mut(&key)
            .ok_or_else(|| "index entry vanished".to_string())
    }

    /// Records the messages of one page.
    pub fn record(
        &mut self,
        folder: &str,
        uidvalidity: u32,
        entries: &[(u32, String)],
    ) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.path(folder, uidvalidity);
        let map = self.load(folder, uidvalidity)?;
        let mut lines = String::new();
        for (uid, id) in entries {
            if map.get(uid) != Some(id) {
                map.insert(*uid, id.clone());
                lines.push_str(&format!("{uid}\t{id}\n"));
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        append(&self.dir, &path, &lines)
    }

    /// The message a UID named.
    pub fn lookup(
        &mut self,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
    ) -> Result<Option<String>, String> {
        Ok(self.load(folder, uidvalidity)?.get(&uid).cloned())
    }

    /// Forgets UIDs whose expunge was reported and committed (appends
    /// tombstones: `uid` and an empty id).
    pub fn forget(&mut self, folder: &str, uidvalidity: u32, uids: &[u32]) -> Result<(), String> {
        if uids.is_empty() {
            return Ok(());
        }
        let path = self.path(folder, uidvalidity);
        let map = self.load(folder, uidvalidity)?;
        let mut lines = String::new();
        for uid in uids {
            if map.remove(uid).is_some() {
                lines.push_str(&format!("{uid}\t\n"));
            }
        }
        append(&self.dir, &path, &lines)
    }

    /// Every UID known for the folder (servers without QRESYNC: expunges
    /// are the known UIDs the server no longer lists).
    pub fn uids(&mut self, folder: &str, uidvalidity: u32) -> Result<Vec<u32>, String> {
        let mut v: Vec<u32> = self.load(folder, uidvalidity)?.keys().copied().collect();
        v.sort_unstable();
        Ok(v)
    }
}

fn append(dir: &Path, path: &Path, lines: &str) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    f.write_all(lines.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<HashMap<u32, String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut map = HashMap::new();
    for (uid, id) in text.lines().filter_map(|l| l.split_once('\t')) {
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        if id.is_empty() {
            map.remove(&uid);
        } else {
            map.insert(uid, id.to_string());
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn records_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = UidIndex::new(dir.path().join("ix"));
        ix.record("收件箱", 7, &[(1, "<a@x>".into()), (2, "<b@x>".into())])
            .unwrap();
        let mut again = UidIndex::new(dir.path().join("ix"));
        assert_eq!(
            again.lookup("收件箱", 7, 2).unwrap().as_deref(),
            Some("<b@x>")
        );
        assert_eq!(again.lookup("收件箱", 8, 2).unwrap(), None);
        assert_eq!(again.uids("收件箱", 7).unwrap(), vec![1, 2]);
        again.forget("收件箱", 7, &[1]).unwrap();
        let mut third = UidIndex::new(dir.path().join("ix"));
        assert_eq!(third.uids("收件箱", 7).unwrap(), vec![2]);
        assert_eq!(third.lookup("收件箱", 7, 1).unwrap(), None);
    }
}
