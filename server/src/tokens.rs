//! Edge credentials: one token per edge, issued by `shanlu origin add-edge`.
//!
//! The origin keeps only the BLAKE3 of each token (in `DIR/edges.toml`), so a
//! copy of the origin's folder does not let anyone pass as an edge. The file is
//! re-read when it changes, so an edge added while the origin runs can connect
//! without a restart.
//!
//! An origin on a bucket (issue 16) keeps both books in the bucket too
//! (`v1/tokens/`): every change is made to the bucket's copy by
//! compare-and-swap and then written to the local file, and every origin
//! process copies the bucket's books to its own folder as it follows the
//! catalog head ([`mirror`]), so an edge added or revoked through any process
//! is known to all within seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::edge_name::{EdgeName, EdgeNameError};
use crate::origin::{now_secs, random_token};

/// What an edge is told when the origin cannot check its token because the
/// origin's own `edges.toml` cannot be read (issue 11): the edge's token is
/// not the problem, so it must not be told to get a new one. Sent as the QUIC
/// close reason ([`crate::protocol::CLOSE_ORIGIN_CONFIG`]) and as the start of
/// the HTTP 503 body; edges recognise it by this prefix.
pub const BROKEN_CONFIG: &str = "the origin's configuration is broken: it cannot read its list of edges (edges.toml), so no edge can connect; this edge's token is not the problem: tell the origin's administrator, whose log names the fault";

/// Why an edge credential could not be issued or checked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("{path} is damaged; fix or remove the broken entry")]
    Damaged {
        path: PathBuf,
        #[source]
        cause: toml::de::Error,
    },
    #[error("cannot write {path}")]
    Encode {
        path: PathBuf,
        #[source]
        cause: toml::ser::Error,
    },
    #[error("the name {0:?} already exists; choose another name")]
    Exists(String),
    #[error("no one named {0:?} holds a token here; `shanlu origin edges` lists the names")]
    Unknown(String),
    #[error(
        "{path}: the entry for {name:?} has a damaged token hash; remove it and add the name again"
    )]
    BadHash { path: PathBuf, name: String },
    #[error(transparent)]
    BadName(#[from] EdgeNameError),
    #[error(transparent)]
    Origin(#[from] crate::origin::OriginError),
}

/// A token file: `edges.toml` (`[edges.NAME]`) or `admins.toml`
/// (`[admins.NAME]`, issue 15). Both hold names and the BLAKE3 of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Book {
    Edges,
    Admins,
}

impl Book {
    fn file_name(self) -> &'static str {
        match self {
            Book::Edges => "edges.toml",
            Book::Admins => "admins.toml",
        }
    }

    /// Its key in an origin's bucket (issue 16).
    fn in_bucket(self) -> crate::bucket::Mutable {
        match self {
            Book::Edges => crate::bucket::Mutable::EdgeTokens,
            Book::Admins => crate::bucket::Mutable::AdminTokens,
        }
    }

    /// The file this book is kept in, in the data folder `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TokenFile {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    edges: BTreeMap<String, Entry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    admins: BTreeMap<String, Entry>,
}

impl TokenFile {
    fn entries(&mut self, book: Book) -> &mut BTreeMap<String, Entry> {
        match book {
            Book::Edges => &mut self.edges,
            Book::Admins => &mut self.admins,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// BLAKE3 of the token, hex.
    token_b3: String,
    added_at: u64,
    /// The county an edge belongs to (issue 15), for the fleet dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    county: Option<String>,
    /// When `origin revoke` refused the token from then on (issue 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<u64>,
}

/// One name in a token file, as `origin edges` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub name: String,
    /// BLAKE3 of the token: the key a report from this edge is checked with.
    pub token_b3: catalog::Hash,
    pub added_at: u64,
    pub county: Option<String>,
    pub revoked_at: Option<u64>,
}

fn read_file(path: &Path) -> Result<TokenFile, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|cause| TokenError::Damaged {
            path: path.to_owned(),
            cause,
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(cause) => Err(TokenError::Io {
            action: "reading",
            path: path.to_owned(),
            cause,
        }),
    }
}

/// Writes beside and renames, so a running server never reads half a file.
fn write_file(dir: &Path, book: Book, file: &TokenFile) -> Result<(), TokenError> {
    let path = book.path(dir);
    let text = toml::to_string(file).map_err(|cause| TokenError::Encode {
        path: path.clone(),
        cause,
    })?;
    let tmp = dir.join(format!("{}.tmp", book.file_name()));
    std::fs::write(&tmp, text).map_err(|cause| TokenError::Io {
        action: "writing",
        path: tmp.clone(),
        cause,
    })?;
    std::fs::rename(&tmp, &path).map_err(|cause| TokenError::Io {
        action: "replacing",
        path,
        cause,
    })
}

/// Serializes changes to one token file between processes (`origin
/// add-edge` and an administrator's remote `add-edge` at once).
fn lock_book(dir: &Path, book: Book) -> Result<std::fs::File, TokenError> {
    let path = dir.join(format!("{}.lock", book.file_name()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|cause| TokenError::Io {
            action: "opening",
            path: path.clone(),
            cause,
        })?;
    file.lock().map_err(|cause| TokenError::Io {
        action: "locking",
        path,
        cause,
    })?;
    Ok(file)
}

/// Changes `book` in `dir` by `change`, under the book's lock. On an origin
/// on a bucket the bucket's copy is the one changed (by compare-and-swap,
/// again if another process changed it in between), then the local file.
fn edit<T>(
    dir: &Path,
    book: Book,
    mut change: impl FnMut(&mut TokenFile) -> Result<Option<T>, TokenError>,
) -> Result<Option<T>, TokenError> {
    let _lock = lock_book(dir, book)?;
    let path = book.path(dir);
    let bucket = match crate::origin::store_url(dir) {
        Ok(Some(url)) => Some(crate::bucket::Bucket::from_url(&url).map_err(|source| {
            crate::origin::OriginError::OpenBucket {
                url,
                source: Box::new(source),
            }
        })?),
        // An edge's folder (a county edge's book) has no origin.toml.
        Ok(None) => None,
        Err(err) => return Err(err.into()),
    };
    let Some(bucket) = bucket else {
        let mut file = read_file(&path)?;
        let done = change(&mut file)?;
        if done.is_some() {
            write_file(dir, book, &file)?;
        }
        return Ok(done);
    };
    let which = book.in_bucket();
    for _ in 0..crate::origin::HEAD_RETRIES {
        let held = crate::bucket::block(bucket.read_mutable(which))
            .map_err(crate::origin::OriginError::from)?;
        let (mut file, version) = match held {
            Some((bytes, version)) => (parse(&path, &bytes)?, Some(version)),
            // The first change: the bucket starts from this folder's book.
            None => (read_file(&path)?, None),
        };
        let Some(done) = change(&mut file)? else {
            return Ok(None);
        };
        let text = encode(&path, &file)?;
        let swapped =
            crate::bucket::block(bucket.swap_mutable(which, version.as_ref(), text.into()))
                .map_err(crate::origin::OriginError::from)?;
        if let crate::bucket::Swap::Done(_) = swapped {
            write_file(dir, book, &file)?;
            return Ok(Some(done));
        }
    }
    Err(crate::origin::OriginError::HeadMoved {
        tries: crate::origin::HEAD_RETRIES,
    }
    .into())
}

/// Copies the bucket's copy of `book` to the local file if they differ
/// (issue 16); returns whether it did. Nothing if the bucket has none yet.
pub fn mirror(bucket: &crate::bucket::Bucket, dir: &Path, book: Book) -> Result<bool, TokenError> {
    let path = book.path(dir);
    let Some((bytes, _)) = crate::bucket::block(bucket.read_mutable(book.in_bucket()))
        .map_err(crate::origin::OriginError::from)?
    else {
        return Ok(false);
    };
    let local = match std::fs::read(&path) {
        Ok(local) => Some(local),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(cause) => {
            return Err(TokenError::Io {
                action: "reading",
                path,
                cause,
            });
        }
    };
    if local.as_deref() == Some(&bytes[..]) {
        return Ok(false);
    }
    // Checked before it replaces a working file.
    let file = parse(&path, &bytes)?;
    let _lock = lock_book(dir, book)?;
    write_file(dir, book, &file)?;
    Ok(true)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<TokenFile, TokenError> {
    let text = String::from_utf8_lossy(bytes);
    toml::from_str(&text).map_err(|cause| TokenError::Damaged {
        path: path.to_owned(),
        cause,
    })
}

fn encode(path: &Path, file: &TokenFile) -> Result<String, TokenError> {
    toml::to_string(file).map_err(|cause| TokenError::Encode {
        path: path.to_owned(),
        cause,
    })
}

/// Issues a token for a new edge called `name` (any script: see
/// [`EdgeName`]); returns the token (shown once). The name is stored NFC, and
/// a name that differs from an existing one only in normalisation is the
/// same edge.
pub fn add_edge(dir: &Path, name: &str) -> Result<String, TokenError> {
    add(dir, Book::Edges, name, None)
}

/// Issues a token for `name` in `book`, with the edge's `county` (issue
/// 15); returns the token (shown once). A revoked name stays taken: its
/// reports and history keep their meaning.
pub fn add(dir: &Path, book: Book, name: &str, county: Option<&str>) -> Result<String, TokenError> {
    let name = EdgeName::parse(name)?;
    let county = county.map(EdgeName::parse).transpose()?;
    let token = random_token()?;
    let added = edit(dir, book, |file| {
        let entries = file.entries(book);
        let exists = entries
            .keys()
            .any(|held| held.nfc().eq(name.as_str().chars()));
        if exists {
            return Err(TokenError::Exists(name.to_string()));
        }
        entries.insert(
            name.to_string(),
            Entry {
                token_b3: catalog::Hash::of(token.as_bytes()).to_hex(),
                added_at: now_secs(),
                county: county.as_ref().map(|c| c.to_string()),
                revoked_at: None,
            },
        );
        Ok(Some(()))
    })?;
    debug_assert!(added.is_some());
    Ok(token)
}

/// Records a token already made for `name` by its BLAKE3 (`origin init`'s
/// admin token), unless the name is taken.
pub(crate) fn add_hashed(
    dir: &Path,
    book: Book,
    name: &str,
    token_b3: catalog::Hash,
) -> Result<(), TokenError> {
    let name = EdgeName::parse(name)?;
    edit(dir, book, |file| {
        if file.entries(book).contains_key(name.as_str()) {
            return Ok(None);
        }
        file.entries(book).insert(
            name.to_string(),
            Entry {
                token_b3: token_b3.to_hex(),
                added_at: now_secs(),
                county: None,
                revoked_at: None,
            },
        );
        Ok(Some(()))
    })?;
    Ok(())
}

/// Refuses `name`'s token from the next connection on (issue 15); on a
/// bucket, on every origin process within seconds (issue 16). Returns false
/// if it was already revoked.
pub fn revoke(dir: &Path, book: Book, name: &str) -> Result<bool, TokenError> {
    let revoked = edit(dir, book, |file| {
        let Some(entry) = file
            .entries(book)
            .iter_mut()
            .find(|(held, _)| held.nfc().eq(name.nfc()))
            .map(|(_, entry)| entry)
        else {
            return Err(TokenError::Unknown(name.to_owned()));
        };
        if entry.revoked_at.is_some() {
            return Ok(None);
        }
        entry.revoked_at = Some(now_secs());
        Ok(Some(()))
    })?;
    Ok(revoked.is_some())
}

/// Every name in `book`, revoked ones included, sorted by name.
pub fn list(dir: &Path, book: Book) -> Result<Vec<TokenRecord>, TokenError> {
    let path = book.path(dir);
    let mut file = read_file(&path)?;
    file.entries(book)
        .iter()
        .map(|(name, entry)| record(&path, name, entry))
        .collect()
}

fn record(path: &Path, name: &str, entry: &Entry) -> Result<TokenRecord, TokenError> {
    let token_b3 = entry.token_b3.parse().map_err(|_| TokenError::BadHash {
        path: path.to_owned(),
        name: name.to_owned(),
    })?;
    Ok(TokenRecord {
        name: name.to_owned(),
        token_b3,
        added_at: entry.added_at,
        county: entry.county.clone(),
        revoked_at: entry.revoked_at,
    })
}

/// Checks presented tokens against a token file, re-reading it when it
/// changes. Revoked names are refused.
pub struct Tokens {
    book: Book,
    path: PathBuf,
    cache: Mutex<(Option<FileStamp>, BTreeMap<String, String>)>,
}

/// A token file's modification time and inode: either changes when it is replaced.
pub(crate) type FileStamp = (SystemTime, u64);

/// The edges' tokens (`edges.toml`).
pub type EdgeTokens = Tokens;

impl Tokens {
    /// The edges' tokens in the data folder `dir`.
    pub fn new(dir: &Path) -> Tokens {
        Tokens::of(dir, Book::Edges)
    }

    /// The administrators' tokens in the origin folder `dir` (issue 15).
    pub fn admins(dir: &Path) -> Tokens {
        Tokens::of(dir, Book::Admins)
    }

    fn of(dir: &Path, book: Book) -> Tokens {
        Tokens {
            book,
            path: book.path(dir),
            cache: Mutex::new((None, BTreeMap::new())),
        }
    }

    /// The file the tokens are read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file once at start-up: a broken token file is logged as
    /// an error before anyone is refused because of it.
    pub fn log_if_broken(&self) {
        if let Err(err) = self.check("") {
            self.log_broken(&err);
        }
    }

    /// Logs that callers are refused because the server's own file is broken.
    pub fn log_broken(&self, err: &TokenError) {
        tracing::error!(
            file = %self.path.display(),
            cause = %catalog::format::error_chain(err),
            "the configuration is broken: tokens cannot be checked, so every caller with a token from this file is refused (and told so) until it is fixed"
        );
    }

    /// The name this token belongs to, if any and not revoked.
    pub fn check(&self, token: &str) -> Result<Option<String>, TokenError> {
        // Every change replaces the file (a new inode), so a change within
        // one tick of a coarse clock is still seen.
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| Ok((m.modified()?, std::os::unix::fs::MetadataExt::ino(&m))))
            .ok();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.0.is_none() || cache.0 != modified {
            let mut file = read_file(&self.path)?;
            cache.1 = std::mem::take(file.entries(self.book))
                .into_iter()
                .filter(|(_, entry)| entry.revoked_at.is_none())
                .map(|(name, entry)| (entry.token_b3, name))
                .collect();
            cache.0 = modified;
        }
        let presented = catalog::Hash::of(token.trim().as_bytes()).to_hex();
        Ok(cache.1.get(&presented).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_check_and_others_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = EdgeTokens::new(dir.path());
        assert_eq!(tokens.check("anything").expect("check"), None);
        let token = add_edge(dir.path(), "school-1").expect("add");
        assert_eq!(
            tokens.check(&token).expect("check"),
            Some("school-1".to_owned())
        );
        assert_eq!(tokens.check("wrong").expect("check"), None);
        let stored = std::fs::read_to_string(dir.path().join("edges.toml")).expect("read");
        assert!(!stored.contains(&token), "the token itself is never stored");
        assert!(matches!(
            add_edge(dir.path(), "school-1"),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            add_edge(dir.path(), "bad name"),
            Err(TokenError::BadName(_))
        ));
    }

    /// Issue 15: a revoked token is refused at once by a running checker;
    /// the name stays listed (and taken) with its county and revocation.
    #[test]
    fn issue_15_revoked_tokens_are_refused_and_stay_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = Tokens::new(dir.path());
        let a = add(dir.path(), Book::Edges, "school-a", Some("昭觉县")).expect("add");
        let b = add(dir.path(), Book::Edges, "school-b", None).expect("add");
        assert_eq!(tokens.check(&a).expect("check"), Some("school-a".into()));
        assert!(revoke(dir.path(), Book::Edges, "school-a").expect("revoke"));
        assert!(!revoke(dir.path(), Book::Edges, "school-a").expect("again"));
        assert_eq!(tokens.check(&a).expect("check"), None, "refused at once");
        assert_eq!(tokens.check(&b).expect("check"), Some("school-b".into()));
        let listed = list(dir.path(), Book::Edges).expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].county.as_deref(), Some("昭觉县"));
        assert!(listed[0].revoked_at.is_some());
        assert_eq!(listed[0].token_b3, catalog::Hash::of(a.as_bytes()));
        assert!(listed[1].revoked_at.is_none());
        assert!(matches!(
            add(dir.path(), Book::Edges, "school-a", None),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            revoke(dir.path(), Book::Edges, "nobody"),
            Err(TokenError::Unknown(_))
        ));
        // Admins live in their own book: an edge token is not an admin's.
        let admin = add(dir.path(), Book::Admins, "alice", None).expect("add admin");
        let admins = Tokens::admins(dir.path());
        assert_eq!(admins.check(&admin).expect("check"), Some("alice".into()));
        assert_eq!(admins.check(&b).expect("check"), None);
        assert_eq!(tokens.check(&admin).expect("check"), None);
    }

    #[test]
    fn issue_11_a_broken_edges_toml_is_an_error_naming_the_file_not_an_unknown_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = add_edge(dir.path(), "school-1").expect("add");
        let tokens = EdgeTokens::new(dir.path());
        assert_eq!(
            tokens.check(&token).expect("check"),
            Some("school-1".to_owned())
        );
        std::fs::write(
            dir.path().join("edges.toml"),
            "[edges.school-1\ntoken_b3 = ",
        )
        .expect("break");
        let err = tokens.check(&token).expect_err("a broken file is an error");
        assert!(matches!(err, TokenError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("edges.toml"), "{err}");
        assert!(BROKEN_CONFIG.contains("configuration is broken"));
    }
}
