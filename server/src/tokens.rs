//! Edge credentials: one token per edge, issued by `shanlu origin add-edge`.
//!
//! The origin keeps only the BLAKE3 of each token (in `DIR/edges.toml`), so a
//! copy of the origin's folder does not let anyone pass as an edge. The file is
//! re-read when it changes, so an edge added while the origin runs can connect
//! without a restart.

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
    #[error("an edge named {0:?} already exists; choose another name")]
    Exists(String),
    #[error(transparent)]
    BadName(#[from] EdgeNameError),
    #[error(transparent)]
    Origin(#[from] crate::origin::OriginError),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EdgesFile {
    #[serde(default)]
    edges: BTreeMap<String, EdgeEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EdgeEntry {
    /// BLAKE3 of the token, hex.
    token_b3: String,
    added_at: u64,
}

fn edges_path(dir: &Path) -> PathBuf {
    dir.join("edges.toml")
}

fn read_file(path: &Path) -> Result<EdgesFile, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|cause| TokenError::Damaged {
            path: path.to_owned(),
            cause,
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(EdgesFile::default()),
        Err(cause) => Err(TokenError::Io {
            action: "reading",
            path: path.to_owned(),
            cause,
        }),
    }
}

/// Issues a token for a new edge called `name` (any script: see
/// [`EdgeName`]); returns the token (shown once). The name is stored NFC, and
/// a name that differs from an existing one only in normalisation is the
/// same edge.
pub fn add_edge(dir: &Path, name: &str) -> Result<String, TokenError> {
    let name = EdgeName::parse(name)?;
    let path = edges_path(dir);
    let mut file = read_file(&path)?;
    let exists = file
        .edges
        .keys()
        .any(|held| held.nfc().eq(name.as_str().chars()));
    if exists {
        return Err(TokenError::Exists(name.to_string()));
    }
    let token = random_token()?;
    file.edges.insert(
        name.to_string(),
        EdgeEntry {
            token_b3: catalog::Hash::of(token.as_bytes()).to_hex(),
            added_at: now_secs(),
        },
    );
    let text = toml::to_string(&file).map_err(|cause| TokenError::Encode {
        path: path.clone(),
        cause,
    })?;
    // Write beside and rename, so a running origin never reads half a file.
    let tmp = dir.join("edges.toml.tmp");
    std::fs::write(&tmp, text).map_err(|cause| TokenError::Io {
        action: "writing",
        path: tmp.clone(),
        cause,
    })?;
    std::fs::rename(&tmp, &path).map_err(|cause| TokenError::Io {
        action: "replacing",
        path: path.clone(),
        cause,
    })?;
    Ok(token)
}

/// Checks presented tokens against `edges.toml`, re-reading it when it changes.
pub struct EdgeTokens {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, BTreeMap<String, String>)>,
}

impl EdgeTokens {
    pub fn new(dir: &Path) -> EdgeTokens {
        EdgeTokens {
            path: edges_path(dir),
            cache: Mutex::new((None, BTreeMap::new())),
        }
    }

    /// The file the tokens are read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file once at start-up: a broken `edges.toml` is logged as
    /// an error before any edge is refused because of it.
    pub fn log_if_broken(&self) {
        if let Err(err) = self.check("") {
            self.log_broken(&err);
        }
    }

    /// Logs that edges are refused because the origin's own file is broken.
    pub fn log_broken(&self, err: &TokenError) {
        tracing::error!(
            file = %self.path.display(),
            cause = %catalog::format::error_chain(err),
            "the origin's configuration is broken: edge tokens cannot be checked, so every edge is refused (and told so) until this file is fixed"
        );
    }

    /// The name of the edge this token belongs to, if any.
    pub fn check(&self, token: &str) -> Result<Option<String>, TokenError> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.0.is_none() || cache.0 != modified {
            let file = read_file(&self.path)?;
            cache.1 = file
                .edges
                .into_iter()
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
