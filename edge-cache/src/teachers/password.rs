//! The school's teacher password: set by the IT teacher with `shanlu edge
//! teachers set-password`, kept only as an Argon2id hash (PHC string) in
//! `teachers.toml` in the edge's data folder, mode 0600, beside the largest
//! upload the edge takes (`--max-upload-mib`, default [`DEFAULT_MAX_UPLOAD_MIB`]).

use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// The file beside `edge.toml`.
pub const FILE: &str = "teachers.toml";

/// Shortest password accepted: a school shares it, so it must not be a
/// word anyone guesses.
pub const MIN_LEN: usize = 8;
/// Longest: hashing is costly, and no one types more.
pub const MAX_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the teacher password must be at least {MIN_LEN} characters (it had {0})")]
    TooShort(usize),
    #[error("the teacher password may be at most {MAX_LEN} characters")]
    TooLong,
    #[error(
        "no teacher password is set for this edge; the school's IT teacher sets one with `shanlu edge teachers set-password --data DIR`"
    )]
    NotSet,
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error(
        "{path} is damaged ({cause}); set the password again with `shanlu edge teachers set-password`"
    )]
    Damaged { path: PathBuf, cause: String },
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// The largest upload taken when none is set: a lesson video of an hour.
pub const DEFAULT_MAX_UPLOAD_MIB: u64 = 2048;

#[derive(Debug, Default, Serialize, Deserialize)]
struct TeachersFile {
    /// Argon2id, as a PHC string (`$argon2id$v=19$m=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_upload_mib: Option<u64>,
}

/// The Argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(PasswordError::TooShort(chars));
    }
    if chars > MAX_LEN {
        return Err(PasswordError::TooLong);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|err| PasswordError::Hash(err.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|err| PasswordError::Hash(err.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Hash(err.to_string()))
}

/// Whether `password` matches the PHC string `stored`.
pub fn matches(stored: &str, password: &str) -> bool {
    if password.chars().count() > MAX_LEN {
        return false;
    }
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Sets the password of the edge in `dir` (replacing any), written whole
/// or not at all.
pub fn set(dir: &Path, password: &str) -> Result<(), PasswordError> {
    let hashed = hash(password)?;
    let mut file = read(dir).unwrap_or_default();
    file.password = Some(hashed);
    write(dir, &file)
}

/// Sets the largest upload the edge in `dir` takes, in MiB.
pub fn set_max_upload(dir: &Path, mib: u64) -> Result<(), PasswordError> {
    let mut file = match read(dir) {
        Ok(file) => file,
        Err(PasswordError::NotSet) => TeachersFile::default(),
        Err(err) => return Err(err),
    };
    file.max_upload_mib = Some(mib);
    write(dir, &file)
}

/// The largest upload the edge in `dir` takes, in bytes.
pub fn max_upload_bytes(dir: &Path) -> u64 {
    read(dir)
        .ok()
        .and_then(|file| file.max_upload_mib)
        .unwrap_or(DEFAULT_MAX_UPLOAD_MIB)
        .saturating_mul(1 << 20)
}

fn write(dir: &Path, file: &TeachersFile) -> Result<(), PasswordError> {
    let text = toml::to_string(file).map_err(|err| PasswordError::Hash(err.to_string()))?;
    let path = dir.join(FILE);
    let io = |cause| PasswordError::Io {
        path: path.clone(),
        cause,
    };
    let tmp = dir.join(format!(".{FILE}.tmp"));
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The stored hash of the edge in `dir`.
pub fn load(dir: &Path) -> Result<String, PasswordError> {
    let path = dir.join(FILE);
    let stored = read(dir)?.password.ok_or(PasswordError::NotSet)?;
    PasswordHash::new(&stored).map_err(|err| PasswordError::Damaged {
        path: path.clone(),
        cause: err.to_string(),
    })?;
    Ok(stored)
}

/// The file, as it is (`NotSet` when there is none).
fn read(dir: &Path) -> Result<TeachersFile, PasswordError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(PasswordError::NotSet);
        }
        Err(cause) => return Err(PasswordError::Io { path, cause }),
    };
    toml::from_str(&text).map_err(|err| PasswordError::Damaged {
        path: path.clone(),
        cause: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_kept_only_as_a_hash_and_checked() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(matches!(load(dir.path()), Err(PasswordError::NotSet)));
        assert!(matches!(
            set(dir.path(), "short"),
            Err(PasswordError::TooShort(5))
        ));
        set(dir.path(), "山路课堂的老师们").expect("set");
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("file");
        assert!(
            text.contains("$argon2id$") && !text.contains("山路"),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let stored = load(dir.path()).expect("load");
        assert!(matches(&stored, "山路课堂的老师们"));
        assert!(!matches(&stored, "山路课堂的老师"));
        assert!(!matches(&stored, &"x".repeat(MAX_LEN + 1)));
        assert_eq!(max_upload_bytes(dir.path()), DEFAULT_MAX_UPLOAD_MIB << 20);
        set_max_upload(dir.path(), 5).expect("limit");
        assert_eq!(max_upload_bytes(dir.path()), 5 << 20);
        assert!(matches(
            &load(dir.path()).expect("kept"),
            "山路课堂的老师们"
        ));
        std::fs::write(dir.path().join(FILE), "password = \"plain\"\n").expect("damage");
        assert!(matches!(
            load(dir.path()),
            Err(PasswordError::Damaged { .. })
        ));
    }
}
