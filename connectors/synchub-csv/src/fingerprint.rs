//! What the cursor knows about the file it points into: size, modification
//! time and the SHA-256 of the bytes consumed so far, and the state of one
//! pass over the file (ids seen, the running hash).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde_json::json;
use sha2::{Digest, Sha256};
use synchub_core::Cursor;

/// Size and modification time of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub size: u64,
    /// Nanoseconds since the Unix epoch (0 where the platform has none).
    pub mtime_ns: u64,
}

impl FileStat {
    pub(crate) fn of(path: &Path) -> std::io::Result<FileStat> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            .unwrap_or(0);
        Ok(FileStat {
            size: meta.len(),
            mtime_ns,
        })
    }
}

/// A cursor as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredCursor {
    pub offset: u64,
    pub row: u64,
    pub stat: FileStat,
    pub prefix_sha256: String,
}

impl StoredCursor {
    /// `None` for a cursor without a fingerprint (an older synchub's).
    pub(crate) fn parse(c: &Cursor) -> Option<StoredCursor> {
        let u = |k: &str| c.0.get(k).and_then(|v| v.as_u64());
        Some(StoredCursor {
            offset: u("offset")?,
            row: u("row")?,
            stat: FileStat {
                size: u("size")?,
                mtime_ns: c.0.get("mtime_ns")?.as_str()?.parse().ok()?,
            },
            prefix_sha256: c.0.get("prefix_sha256")?.as_str()?.to_string(),
        })
    }
}

/// One pass over the file: how far it has read, the hash of what it read,
/// the file as it last saw it, and the ids of the rows it served.
pub(crate) struct Pass {
    pub offset: u64,
    pub row: u64,
    hasher: Sha256,
    pub hash: String,
    stat: FileStat,
    pub ids: HashMap<String, u64>,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pass")
            .field("offset", &self.offset)
            .field("row", &self.row)
            .field("hash", &self.hash)
            .field("ids", &self.ids.len())
            .finish()
    }
}

impl Pass {
    pub(crate) fn new(stat: FileStat) -> Pass {
        let hasher = Sha256::new();
        let hash = hex::encode(hasher.clone().finalize());
        Pass {
            offset: 0,
            row: 0,
            hasher,
            hash,
            stat,
            ids: HashMap::new(),
        }
    }

    /// This pass is the one that handed out `c`, over the file as it is.
    pub(crate) fn continues(&self, c: &StoredCursor, now: FileStat) -> bool {
        self.offset == c.offset
            && self.row == c.row
            && self.hash == c.prefix_sha256
            && self.stat == c.stat
            && now == self.stat
    }

    /// Takes over a hasher that has consumed the first `offset` bytes.
    pub(crate) fn advance_to(&mut self, hasher: Sha256, offset: u64, row: u64) {
        self.hash = hex::encode(hasher.clone().finalize());
        self.hasher = hasher;
        self.offset = offset;
        self.row = row;
    }

    /// Records the bytes of a page just served, up to row `row`.
    pub(crate) fn consume(&mut self, bytes: &[u8], row: u64) {
        self.hasher.update(bytes);
        self.hash = hex::encode(self.hasher.clone().finalize());
        self.offset += bytes.len() as u64;
        self.row = row;
    }

    pub(crate) fn cursor(&self) -> Cursor {
        Cursor(json!({
            "offset": self.offset,
            "row": self.row,
            "size": self.stat.size,
            // As text: JSON numbers past 2^53 lose digits in some readers.
            "mtime_ns": self.stat.mtime_ns.to_string(),
            "prefix_sha256": self.hash,
        }))
    }
}

/// A reader that keeps every byte it hands out (the CSV parser reads
/// ahead; only the bytes it consumed are hashed).
pub(crate) struct Recorder<R> {
    inner: R,
    seen: Vec<u8>,
}

impl<R: Read> Recorder<R> {
    pub(crate) fn new(inner: R) -> Recorder<R> {
        Recorder {
            inner,
            seen: Vec::new(),
        }
    }

    /// The first `n` bytes handed out.
    pub(crate) fn bytes(&self, n: u64) -> &[u8] {
        let n = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.seen.len());
        &self.seen[..n]
    }
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// A reader that hashes every byte it hands out.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// The hasher and the number of bytes hashed.
    pub(crate) fn finish(self) -> (Sha256, u64) {
        (self.hasher, self.read)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}
