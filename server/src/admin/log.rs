//! `DIR/admin.log`: every administrator's action, one JSON line each, with
//! the name of the token that did it (issue 15). Appended and synced before
//! the action is answered; read back by the dashboard and `origin edges`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who acted when no admin token was involved: a command run on the origin
/// machine itself, by whoever can read its data folder.
pub const LOCAL: &str = "(origin machine)";

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Unix seconds.
    pub at: u64,
    /// The admin token's name, or [`LOCAL`].
    pub admin: String,
    /// `publish`, `withdraw`, `add-edge`, `revoke`, `add-admin`, …
    pub action: String,
    /// What it was done to: a course id, an edge's name.
    pub subject: String,
    /// The outcome in a few words (`sequence 12`, `refused: …`).
    pub detail: String,
}

/// Why the log could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot append to the administrators' log {path}; check the disk and the folder's permissions"
)]
pub struct LogError {
    pub path: PathBuf,
    #[source]
    pub cause: std::io::Error,
}

/// The log's path in the origin folder `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("admin.log")
}

/// Appends one action to `DIR/admin.log` and syncs it; also logs it.
pub fn record(
    dir: &Path,
    admin: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), LogError> {
    let line = Action {
        at: crate::origin::now_secs(),
        admin: admin.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail: detail.to_owned(),
    };
    tracing::info!(admin, action, subject, detail, "administrator's action");
    let path = path(dir);
    let fail = |cause| LogError {
        path: path.clone(),
        cause,
    };
    let mut text = serde_json::to_string(&line).map_err(|e| fail(e.into()))?;
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(fail)?;
    // One write of one line: concurrent appenders never interleave inside it.
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_data().map_err(fail)
}

/// The last `most` actions, oldest first. Reads at most the last 4 MiB of
/// the log; a damaged line is skipped.
pub fn recent(dir: &Path, most: usize) -> Result<Vec<Action>, LogError> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 4 * 1024 * 1024;
    let path = path(dir);
    let fail = |cause| LogError {
        path: path.clone(),
        cause,
    };
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(fail(err)),
    };
    let len = file.metadata().map_err(fail)?.len();
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start)).map_err(fail)?;
    let mut text = String::new();
    file.take(TAIL).read_to_string(&mut text).map_err(fail)?;
    let mut lines: Vec<Action> = text
        .lines()
        .skip(usize::from(start > 0))
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let drop = lines.len().saturating_sub(most);
    lines.drain(..drop);
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_15_actions_are_appended_and_read_back_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(recent(dir.path(), 10).expect("empty").is_empty());
        record(dir.path(), "alice", "publish", "math", "sequence 2").expect("record");
        record(dir.path(), LOCAL, "revoke", "school-1", "revoked").expect("record");
        std::fs::OpenOptions::new()
            .append(true)
            .open(path(dir.path()))
            .and_then(|mut f| f.write_all(b"{not json\n"))
            .expect("damage");
        record(dir.path(), "bob", "withdraw", "art", "sequence 3").expect("record");
        let all = recent(dir.path(), 10).expect("read");
        let names: Vec<_> = all.iter().map(|a| a.admin.as_str()).collect();
        assert_eq!(names, ["alice", LOCAL, "bob"]);
        let last = recent(dir.path(), 1).expect("read");
        assert_eq!(last[0].action, "withdraw");
    }
}
