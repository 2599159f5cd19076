//! Resumable uploads, in the way of the tus 1.0 core protocol: an upload
//! is created with its length (`POST`), its offset asked for (`HEAD`), and
//! its bytes appended from that offset (`PATCH`), as often as the Wi-Fi
//! needs.
//!
//! Each upload is two files in `uploads/` of the edge's data folder:
//! `<id>.part`, the bytes, and `<id>.toml`, its record (length, file name,
//! teacher, and the offset whose bytes are on disk for sure). Appends write
//! through the page cache; every [`SYNC_EVERY`] of an append the part file
//! is synced and only then the record's offset moved. While the edge runs, an upload's offset is what was written (the
//! page cache keeps it, also across a crash of the process); after a power
//! cut the part file is cut back to the recorded offset and nothing
//! unsynced is trusted: the teacher's page asks where to go on (`HEAD`)
//! and sends the rest from there, as tus clients do. A connection that
//! drops in the middle keeps what arrived.
//!
//! Bounds: each upload at most `max_bytes`, at most [`MAX_UPLOADS`]
//! unfinished at once, one append at a time per upload, and an upload left
//! for [`EXPIRE`] is deleted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

/// Unfinished uploads kept at once, over every teacher.
pub const MAX_UPLOADS: usize = 32;
/// An upload untouched this long is deleted.
pub const EXPIRE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A body that sends nothing for this long is cut (what arrived is kept).
pub const STALL: Duration = Duration::from_secs(60);
/// Time between syncs of an append, so a power cut loses at most this
/// much of the teacher's sending (the page sends it again). By time, not
/// bytes: what matters to her is minutes lost, and a sync every few MiB
/// made a fast upload wait for the disk (half nginx's speed, measured).
/// A finished upload is not synced either: making its lesson stores (and
/// syncs) its bytes in the store moments later.
pub const SYNC_EVERY: Duration = Duration::from_secs(5);
/// Bytes gathered before a write of the part file.
const WRITE_BYTES: usize = 1 << 20;
/// Longest file name kept.
pub const MAX_NAME: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "no such upload: {0} (it finished, was removed, or expired after 7 days; start it again)"
    )]
    NotFound(String),
    #[error("the file is {length} bytes; this edge takes uploads of at most {max} bytes")]
    TooLarge { length: u64, max: u64 },
    #[error("{0} uploads are unfinished; finish or remove one first")]
    TooMany(usize),
    #[error("the upload is at byte {at}, not {asked}: ask where it is (HEAD) and go on from there")]
    WrongOffset { at: u64, asked: u64 },
    #[error("the upload is {length} bytes; these bytes would go past its end")]
    PastEnd { length: u64 },
    #[error("another append to this upload is under way")]
    Busy,
    #[error("the upload has {have} of its {length} bytes; send the rest first")]
    Unfinished { have: u64, length: u64 },
    #[error("{name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("not enough disk for {length} more bytes ({free} free, {keep} kept free)")]
    NoRoom { length: u64, free: u64, keep: u64 },
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("the upload's record {path} is damaged: {cause}")]
    Damaged { path: PathBuf, cause: String },
}

/// An upload's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub length: u64,
    /// Bytes on disk for sure.
    pub offset: u64,
    /// The file's name as the teacher's device gave it.
    pub name: String,
    pub teacher: String,
    /// Unix seconds of the last append.
    pub touched: u64,
    /// Its length is not known yet (a form's file): `length` is the most
    /// it may be until [`Uploads::seal`].
    #[serde(default)]
    pub open_ended: bool,
}

/// The uploads of one edge.
pub struct Uploads {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes the disk keeps free whatever the uploads.
    keep_free: u64,
    /// Uploads with an append under way.
    busy: Mutex<HashMap<String, ()>>,
    /// Bytes written (not yet all synced) per upload, beyond its record's
    /// offset; at most one entry per unfinished upload.
    written: Mutex<HashMap<String, u64>>,
    /// Create and delete one at a time, so the count holds.
    books: Mutex<()>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether `id` is one this module made (32 hex digits): never a path.
fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A file name a teacher's device may send: no folders, no control
/// characters, not hidden, with an ending.
pub fn check_name(name: &str) -> Result<(), UploadError> {
    let bad = |why| {
        Err(UploadError::BadName {
            name: name.chars().take(MAX_NAME).collect(),
            why,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return bad("a file name must be 1 to 200 bytes");
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return bad("a file name may not hold / or \\ or control characters");
    }
    if name.starts_with('.') || !name.contains('.') {
        return bad(
            "a file name needs an ending such as .mp4 or .pdf and may not start with a dot",
        );
    }
    Ok(())
}

/// Folders HTML lessons' archives are unpacked into.
const UNPACK_PREFIX: &str = "unpack-";

impl Uploads {
    /// The uploads kept in `dir` (made if missing); unfinished ones older
    /// than [`EXPIRE`] are deleted, and every part file is cut back to its
    /// record's offset.
    pub fn open(dir: &Path, max_bytes: u64, keep_free: u64) -> Result<Uploads, UploadError> {
        let io = |cause| UploadError::Io {
            path: dir.to_owned(),
            cause,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let uploads = Uploads {
            dir: dir.to_owned(),
            max_bytes,
            keep_free,
            busy: Mutex::default(),
            written: Mutex::default(),
            books: Mutex::default(),
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with(UNPACK_PREFIX) {
                // An HTML lesson's .zip being unpacked when the edge stopped.
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let Some(id) = name.strip_suffix(".toml").filter(|id| is_id(id)) else {
                if let Some(id) = name.strip_suffix(".part")
                    && !dir.join(format!("{id}.toml")).exists()
                {
                    // A part whose record was never written.
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            };
            match uploads.record(id) {
                Ok(record) if now().saturating_sub(record.touched) > EXPIRE.as_secs() => {
                    uploads.delete(id);
                }
                Ok(record) => {
                    let part = uploads.part_path(id);
                    let file = std::fs::OpenOptions::new().write(true).open(&part);
                    match file {
                        Ok(file) => file
                            .set_len(record.offset)
                            .map_err(|cause| UploadError::Io { path: part, cause })?,
                        Err(_) => uploads.delete(id),
                    }
                }
                Err(_) => uploads.delete(id),
            }
        }
        Ok(uploads)
    }

    /// A new folder name to unpack a .zip into (removed at the next start
    /// if the edge stops before it is).
    pub fn unpack_path(&self) -> PathBuf {
        let mut raw = [0u8; 8];
        let _ = getrandom::fill(&mut raw);
        self.dir
            .join(format!("{UNPACK_PREFIX}{}", hex::encode(raw)))
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.toml"))
    }

    fn part_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    /// The record of upload `id`.
    pub fn record(&self, id: &str) -> Result<Record, UploadError> {
        if !is_id(id) {
            return Err(UploadError::NotFound(id.chars().take(40).collect()));
        }
        let path = self.record_path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(UploadError::NotFound(id.to_owned()));
            }
            Err(cause) => return Err(UploadError::Io { path, cause }),
        };
        toml::from_str(&text).map_err(|err| UploadError::Damaged {
            path,
            cause: err.to_string(),
        })
    }

    /// Upload `id` if `teacher` started it (another teacher's is "not found").
    /// Upload `id` if `teacher` started it (another teacher's is "not
    /// found"), with its offset as written so far.
    pub fn record_of(&self, id: &str, teacher: &str) -> Result<Record, UploadError> {
        let mut record = self.record(id)?;
        if record.teacher != teacher {
            return Err(UploadError::NotFound(id.to_owned()));
        }
        if let Some(written) = crate::lock(&self.written).get(id) {
            record.offset = record.offset.max(*written);
        }
        Ok(record)
    }

    fn write_record(&self, id: &str, record: &Record) -> Result<(), UploadError> {
        let path = self.record_path(id);
        let tmp = self.dir.join(format!(".{id}.toml.tmp"));
        let io = |cause| UploadError::Io {
            path: path.clone(),
            cause,
        };
        let text = toml::to_string(record).map_err(|err| UploadError::Damaged {
            path: path.clone(),
            cause: err.to_string(),
        })?;
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Starts an upload of `length` bytes named `name`; its id.
    pub fn create(&self, teacher: &str, name: &str, length: u64) -> Result<String, UploadError> {
        self.start(teacher, name, length, false)
    }

    /// Starts an upload whose length comes with its end (a form's file),
    /// at most the edge's limit; [`Uploads::seal`] it when the body ends.
    pub fn create_unsized(&self, teacher: &str, name: &str) -> Result<String, UploadError> {
        self.start(teacher, name, self.max_bytes, true)
    }

    /// The upload's length is what arrived.
    pub fn seal(&self, id: &str, teacher: &str) -> Result<Record, UploadError> {
        let mut record = self.record_of(id, teacher)?;
        record.length = record.offset;
        record.open_ended = false;
        self.write_record(id, &record)?;
        Ok(record)
    }

    fn start(
        &self,
        teacher: &str,
        name: &str,
        length: u64,
        open_ended: bool,
    ) -> Result<String, UploadError> {
        check_name(name)?;
        if length > self.max_bytes {
            return Err(UploadError::TooLarge {
                length,
                max: self.max_bytes,
            });
        }
        let _books = crate::lock(&self.books);
        let ids: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|cause| UploadError::Io {
                path: self.dir.clone(),
                cause,
            })?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".toml")
                    .filter(|id| is_id(id))
                    .map(str::to_owned)
            })
            .collect();
        // Uploads left for a week go, also while the edge runs for months.
        let mut coming = 0u64;
        let mut unfinished = 0;
        for id in &ids {
            match self.record(id) {
                Ok(record) if now().saturating_sub(record.touched) > EXPIRE.as_secs() => {
                    self.delete(id);
                }
                Ok(record) => {
                    unfinished += 1;
                    coming =
                        coming.saturating_add(record.length - record.offset.min(record.length));
                }
                Err(_) => unfinished += 1,
            }
        }
        if unfinished >= MAX_UPLOADS {
            return Err(UploadError::TooMany(unfinished));
        }
        if let Ok(stat) = rustix::fs::statvfs(&self.dir) {
            let free = stat.f_bavail.saturating_mul(stat.f_frsize);
            // The bytes land twice for a moment (the upload, then the
            // store), and the other unfinished uploads' rest is coming too.
            let need = length.saturating_mul(2).saturating_add(coming);
            if free < need.saturating_add(self.keep_free) {
                return Err(UploadError::NoRoom {
                    length: need,
                    free,
                    keep: self.keep_free,
                });
            }
        }
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|err| UploadError::Io {
            path: self.dir.clone(),
            cause: std::io::Error::other(err.to_string()),
        })?;
        let id = hex::encode(raw);
        let part = self.part_path(&id);
        File::create(&part).map_err(|cause| UploadError::Io { path: part, cause })?;
        self.write_record(
            &id,
            &Record {
                length,
                offset: 0,
                name: name.to_owned(),
                teacher: teacher.to_owned(),
                touched: now(),
                open_ended,
            },
        )?;
        Ok(id)
    }

    /// Appends `body` to upload `id` at `offset` (which must be where it
    /// is); the new offset. What arrives before the body fails or stalls
    /// is kept.
    pub async fn append<S, E>(
        self: &Arc<Self>,
        id: &str,
        teacher: &str,
        offset: u64,
        body: S,
    ) -> Result<u64, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let record = self.record_of(id, teacher)?;
        if record.offset != offset {
            return Err(UploadError::WrongOffset {
                at: record.offset,
                asked: offset,
            });
        }
        let _busy = Busy::take(self, id)?;
        let path = self.part_path(id);
        let io = |cause| UploadError::Io {
            path: path.clone(),
            cause,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.set_len(offset).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut writer = Writer {
            file: Some(file),
            pending: None,
        };
        let mut body = body;
        let mut at = offset;
        let mut synced = self.record(id)?.offset;
        let mut last_sync = tokio::time::Instant::now();
        let mut batch = Vec::with_capacity(WRITE_BYTES);
        let mut result = Ok(());
        loop {
            let next = match tokio::time::timeout(STALL, body.next()).await {
                Ok(Some(Ok(piece))) => piece,
                // The connection dropped or stalled: keep what arrived.
                Ok(Some(Err(_))) | Err(_) | Ok(None) => break,
            };
            if at + batch.len() as u64 + next.len() as u64 > record.length {
                result = Err(UploadError::PastEnd {
                    length: record.length,
                });
                break;
            }
            batch.extend_from_slice(&next);
            if batch.len() >= WRITE_BYTES {
                at += batch.len() as u64;
                let full = std::mem::replace(&mut batch, Vec::with_capacity(WRITE_BYTES));
                if let Err(cause) = writer.write(full).await {
                    result = Err(io(cause));
                    break;
                }
                crate::lock(&self.written).insert(id.to_owned(), at);
                if at > synced && last_sync.elapsed() >= SYNC_EVERY {
                    self.sync(id, &mut writer, at).await.map_err(io)?;
                    synced = at;
                    last_sync = tokio::time::Instant::now();
                }
            }
        }
        if result.is_ok() && !batch.is_empty() {
            at += batch.len() as u64;
            if let Err(cause) = writer.write(batch).await {
                result = Err(io(cause));
            }
        }
        // The last write's outcome, whatever ended the loop.
        if let Err(cause) = writer.finish().await {
            crate::lock(&self.written).remove(id);
            return Err(io(cause));
        }
        if at > synced {
            crate::lock(&self.written).insert(id.to_owned(), at);
        }
        result.map(|()| at)
    }

    /// Syncs the part file and moves the record's offset to `at`.
    async fn sync(&self, id: &str, writer: &mut Writer, at: u64) -> std::io::Result<()> {
        writer.finish().await?;
        let file = writer
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("no file"))?;
        let file = tokio::task::spawn_blocking(move || file.sync_data().map(|()| file))
            .await
            .map_err(|_| std::io::Error::other("the edge is stopping"))??;
        writer.file = Some(file);
        let mut record = self
            .record(id)
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        record.offset = at;
        record.touched = now();
        self.write_record(id, &record)
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        crate::lock(&self.written).remove(id);
        Ok(())
    }

    /// The finished upload's file, to read once; the record stays until
    /// [`Uploads::delete`].
    pub fn finished(&self, id: &str, teacher: &str) -> Result<(Record, PathBuf), UploadError> {
        let record = self.record_of(id, teacher)?;
        if record.offset != record.length {
            return Err(UploadError::Unfinished {
                have: record.offset,
                length: record.length,
            });
        }
        Ok((record, self.part_path(id)))
    }

    /// Forgets upload `id` and deletes its bytes.
    pub fn delete(&self, id: &str) {
        if !is_id(id) {
            return;
        }
        let _ = std::fs::remove_file(self.record_path(id));
        let _ = std::fs::remove_file(self.part_path(id));
        crate::lock(&self.written).remove(id);
    }

    /// The unfinished uploads of `teacher`: (id, record).
    pub fn of_teacher(&self, teacher: &str) -> Vec<(String, Record)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Record)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".toml")?.to_owned();
                let record = self.record_of(&id, teacher).ok()?;
                Some((id, record))
            })
            .collect();
        out.sort_by_key(|(_, record)| std::cmp::Reverse(record.touched));
        out
    }
}

/// The part file, written a batch at a time on the blocking pool while the
/// next batch arrives.
struct Writer {
    file: Option<File>,
    pending: Option<tokio::task::JoinHandle<std::io::Result<File>>>,
}

impl Writer {
    /// Waits for the previous batch, then starts writing `batch`.
    async fn write(&mut self, batch: Vec<u8>) -> std::io::Result<()> {
        self.finish().await?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("no file"))?;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&batch).map(|()| file)
        }));
        Ok(())
    }

    /// Waits for the batch being written.
    async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(pending) = self.pending.take() {
            let file = pending
                .await
                .map_err(|_| std::io::Error::other("the edge is stopping"))??;
            self.file = Some(file);
        }
        Ok(())
    }
}

/// An append under way on one upload; released when dropped.
struct Busy<'a> {
    uploads: &'a Uploads,
    id: String,
}

impl<'a> Busy<'a> {
    fn take(uploads: &'a Uploads, id: &str) -> Result<Busy<'a>, UploadError> {
        let mut busy = crate::lock(&uploads.busy);
        if busy.insert(id.to_owned(), ()).is_some() {
            return Err(UploadError::Busy);
        }
        Ok(Busy {
            uploads,
            id: id.to_owned(),
        })
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        crate::lock(&self.uploads.busy).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        pieces: Vec<Result<&'static [u8], std::io::Error>>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures_util::stream::iter(pieces.into_iter().map(|p| p.map(Bytes::from_static)))
    }

    #[tokio::test]
    async fn an_upload_cut_off_keeps_what_arrived_and_goes_on_from_there() {
        let dir = tempfile::tempdir().expect("dir");
        let uploads = Arc::new(Uploads::open(dir.path(), 100, 0).expect("open"));
        let id = uploads.create("王老师", "歌.m4a", 10).expect("create");
        let cut = body(vec![Ok(b"abcd"), Err(std::io::Error::other("Wi-Fi gone"))]);
        assert_eq!(
            uploads.append(&id, "王老师", 0, cut).await.expect("kept"),
            4
        );
        assert_eq!(uploads.record_of(&id, "王老师").expect("record").offset, 4);
        // Another teacher cannot see it; the offset must be the right one.
        assert!(matches!(
            uploads.record_of(&id, "李老师"),
            Err(UploadError::NotFound(_))
        ));
        let wrong = uploads
            .append(&id, "王老师", 0, body(vec![Ok(b"abcd")]))
            .await;
        assert!(matches!(
            wrong,
            Err(UploadError::WrongOffset { at: 4, asked: 0 })
        ));
        assert!(matches!(
            uploads.finished(&id, "王老师"),
            Err(UploadError::Unfinished {
                have: 4,
                length: 10
            })
        ));
        let past = uploads
            .append(&id, "王老师", 4, body(vec![Ok(b"efghijk")]))
            .await;
        assert!(matches!(past, Err(UploadError::PastEnd { length: 10 })));
        assert_eq!(
            uploads
                .append(&id, "王老师", 4, body(vec![Ok(b"efghij")]))
                .await
                .expect("rest"),
            10
        );
        let (record, path) = uploads.finished(&id, "王老师").expect("finished");
        assert_eq!(record.name, "歌.m4a");
        assert_eq!(std::fs::read(path).expect("bytes"), b"abcdefghij");
    }

    #[tokio::test]
    async fn after_a_restart_only_synced_bytes_count() {
        let dir = tempfile::tempdir().expect("dir");
        let uploads = Arc::new(Uploads::open(dir.path(), 100, 0).expect("open"));
        let id = uploads.create("t", "a.pdf", 10).expect("create");
        uploads
            .append(&id, "t", 0, body(vec![Ok(b"%PDF")]))
            .await
            .expect("append");
        assert_eq!(uploads.record_of(&id, "t").expect("record").offset, 4);
        // A power cut before those bytes were synced, with junk after them.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(format!("{id}.part")))
            .and_then(|mut f| f.write_all(b"junk"))
            .expect("junk");
        let uploads = Arc::new(Uploads::open(dir.path(), 100, 0).expect("reopen"));
        assert_eq!(uploads.record_of(&id, "t").expect("record").offset, 0);
        let part = dir.path().join(format!("{id}.part"));
        assert_eq!(std::fs::metadata(&part).expect("part").len(), 0);
        // The teacher's page sends it all again, and the upload is whole.
        uploads
            .append(&id, "t", 0, body(vec![Ok(b"%PDF-1.4\n\n")]))
            .await
            .expect("again");
        let (_, path) = uploads.finished(&id, "t").expect("finished");
        assert_eq!(std::fs::read(&path).expect("part"), b"%PDF-1.4\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_append_is_synced_and_recorded_every_few_seconds() {
        let dir = tempfile::tempdir().expect("dir");
        let uploads = Arc::new(Uploads::open(dir.path(), 8 << 20, 0).expect("open"));
        let id = uploads.create("t", "a.mp4", 4 << 20).expect("create");
        let piece = Bytes::from(vec![7u8; WRITE_BYTES]);
        // A MiB, a pause past SYNC_EVERY, another MiB, then the connection
        // drops: the first two MiB are recorded as on disk.
        let slow = futures_util::stream::unfold(0, move |n| {
            let piece = piece.clone();
            async move {
                match n {
                    0 => Some((Ok::<_, std::io::Error>(piece), 1)),
                    1 => {
                        tokio::time::sleep(SYNC_EVERY + Duration::from_secs(1)).await;
                        Some((Ok(piece), 2))
                    }
                    _ => None,
                }
            }
        });
        let at = uploads
            .append(&id, "t", 0, Box::pin(slow))
            .await
            .expect("append");
        assert_eq!(at, 2 << 20);
        assert_eq!(uploads.record(&id).expect("record").offset, 2 << 20);
    }

    #[test]
    fn limits_names_and_ids_are_enforced() {
        let dir = tempfile::tempdir().expect("dir");
        let uploads = Uploads::open(dir.path(), 100, 0).expect("open");
        assert!(matches!(
            uploads.create("t", "a.mp4", 101),
            Err(UploadError::TooLarge { .. })
        ));
        for bad in [
            "",
            "../a.mp4",
            "a/b.mp4",
            ".hidden.mp4",
            "noending",
            "a\nb.mp4",
        ] {
            assert!(
                matches!(
                    uploads.create("t", bad, 1),
                    Err(UploadError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        for _ in 0..MAX_UPLOADS {
            uploads.create("t", "a.mp4", 1).expect("create");
        }
        assert!(matches!(
            uploads.create("t", "a.mp4", 1),
            Err(UploadError::TooMany(_))
        ));
        assert!(matches!(
            uploads.record("../../etc/passwd"),
            Err(UploadError::NotFound(_))
        ));
        assert_eq!(uploads.of_teacher("t").len(), MAX_UPLOADS);
        assert!(uploads.of_teacher("other").is_empty());
        // One left for over a week goes, and makes room, while the edge runs.
        let (old, mut record) = uploads.of_teacher("t").remove(0);
        record.touched = 0;
        uploads.write_record(&old, &record).expect("age it");
        uploads.create("t", "a.mp4", 1).expect("room again");
        assert!(matches!(
            uploads.record(&old),
            Err(UploadError::NotFound(_))
        ));
    }
}
