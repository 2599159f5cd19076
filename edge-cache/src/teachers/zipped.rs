//! HTML lessons uploaded as one `.zip` (a folder with `index.html`, its
//! pictures, styles and scripts): unpacked, with limits, into files the
//! lesson is made of.
//!
//! Nothing in the archive is trusted: each entry's name must be a plain
//! relative path (no `..`, no absolute or drive paths, no backslashes, no
//! control characters), links are refused, its ending must be a kind a
//! lesson page uses, and the bytes written are counted as they are
//! unpacked (an entry that says it is small and unpacks to gigabytes stops
//! at the limit). Files are created inside a fresh folder the caller owns,
//! never over an existing one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Most files one archive may hold.
pub const MAX_ENTRIES: usize = 2000;
/// Deepest folder nesting inside an archive.
pub const MAX_DEPTH: usize = 16;
/// Longest path inside an archive, in bytes.
pub const MAX_PATH_BYTES: usize = 240;

/// The kinds of file an HTML lesson is made of, by ending.
const KINDS: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("css", "text/css"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("json", "application/json"),
    ("txt", "text/plain"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("vtt", "text/vtt"),
    ("pdf", "application/pdf"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
];

/// One file unpacked: its path in the lesson, where it is, its media type.
#[derive(Debug)]
pub struct Unpacked {
    pub name: String,
    pub path: PathBuf,
    pub media_type: &'static str,
}

/// Checks an entry's name; the path it has in the lesson.
fn checked_name(raw: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("{raw:?} in the .zip: {why}"));
    if raw.is_empty() || raw.len() > MAX_PATH_BYTES {
        return bad(&format!("a path needs 1 to {MAX_PATH_BYTES} bytes"));
    }
    if raw.starts_with('/') || raw.contains('\\') || raw.contains(':') {
        return bad("only relative paths with / are taken");
    }
    if raw.chars().any(char::is_control) {
        return bad("control characters in a name");
    }
    let parts: Vec<&str> = raw.split('/').collect();
    if parts.len() > MAX_DEPTH {
        return bad(&format!("folders deeper than {MAX_DEPTH}"));
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.starts_with('.'))
    {
        return bad("empty, hidden, `.` or `..` parts in a path");
    }
    Ok(raw.to_owned())
}

/// The media type of a lesson file by its ending.
pub fn kind(name: &str) -> Option<&'static str> {
    let ending = name.rsplit_once('.')?.1.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(e, _)| *e == ending)
        .map(|(_, media)| *media)
}

/// Unpacks the archive at `archive` into the new folder `into` (which must
/// not exist), writing at most `max_bytes` in all. A folder of the archive
/// with one top folder is taken from inside it (`lesson/index.html` becomes
/// `index.html`). On a refusal, whatever was written is removed.
pub fn unpack(archive: &Path, into: &Path, max_bytes: u64) -> Result<Vec<Unpacked>, String> {
    std::fs::create_dir(into).map_err(|e| format!("making {}: {e}", into.display()))?;
    let unpacked = unpack_into(archive, into, max_bytes);
    if unpacked.is_err() {
        let _ = std::fs::remove_dir_all(into);
    }
    unpacked
}

fn unpack_into(archive: &Path, into: &Path, max_bytes: u64) -> Result<Vec<Unpacked>, String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("opening the .zip: {e}"))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("the .zip cannot be read: {e}"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!(
            "the .zip holds {} entries; a lesson takes at most {MAX_ENTRIES}",
            zip.len()
        ));
    }
    // Names first, so nothing is written for an archive refused by name.
    let mut names = Vec::new();
    for index in 0..zip.len() {
        let entry = zip
            .by_index_raw(index)
            .map_err(|e| format!("entry {index} of the .zip cannot be read: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let raw = entry
            .name()
            .map_err(|e| format!("entry {index} of the .zip has no readable name: {e}"))?
            .into_owned();
        if entry.is_symlink() {
            return Err(format!(
                "{raw:?} in the .zip is a link; links are not taken"
            ));
        }
        let name = checked_name(&raw)?;
        let media = kind(&name).ok_or_else(|| {
            format!(
                "{name:?} in the .zip is not a kind a lesson page uses ({})",
                KINDS.iter().map(|(e, _)| *e).collect::<Vec<_>>().join(", ")
            )
        })?;
        names.push((index, name, media));
    }
    if names.is_empty() {
        return Err("the .zip holds no files".to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    for (_, name, _) in &names {
        if !seen.insert(name.to_lowercase()) {
            return Err(format!("{name:?} is in the .zip twice"));
        }
    }
    let strip = common_top(&names.iter().map(|(_, n, _)| n.as_str()).collect::<Vec<_>>());
    let mut written = 0u64;
    let mut out = Vec::with_capacity(names.len());
    for (index, name, media) in names {
        let mut entry = zip
            .by_index(index)
            .map_err(|e| format!("{name:?} in the .zip cannot be read: {e}"))?;
        let name = name[strip.len()..].to_owned();
        let path = into.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{name}: {e}"))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("{name}: {e}"))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| format!("{name:?} in the .zip cannot be unpacked: {e}"))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > max_bytes {
                return Err(format!(
                    "the .zip unpacks to more than {}, the upload limit",
                    catalog::format::bytes(max_bytes)
                ));
            }
            file.write_all(&buf[..n])
                .map_err(|e| format!("{name}: {e}"))?;
        }
        out.push(Unpacked {
            name,
            path,
            media_type: media,
        });
    }
    Ok(out)
}

/// `top/` when every name is inside the one folder `top`, else nothing.
fn common_top(names: &[&str]) -> String {
    let Some((top, _)) = names.first().and_then(|n| n.split_once('/')) else {
        return String::new();
    };
    let prefix = format!("{top}/");
    if names.iter().all(|n| n.starts_with(&prefix)) {
        prefix
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn archive(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("lesson.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            zip.start_file(*name, options).expect("start");
            zip.write_all(bytes).expect("write");
        }
        zip.finish().expect("finish");
        path
    }

    #[test]
    fn issue_17_an_html_folder_unpacks_from_inside_its_top_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zip = archive(
            dir.path(),
            &[
                ("彝文/index.html", b"<h1>hi</h1>"),
                ("彝文/img/a.png", b"\x89PNG"),
                ("彝文/app.js", b"1"),
            ],
        );
        let got = unpack(&zip, &dir.path().join("out"), 1 << 20).expect("unpacked");
        let names: Vec<_> = got
            .iter()
            .map(|u| (u.name.as_str(), u.media_type))
            .collect();
        assert_eq!(
            names,
            [
                ("index.html", "text/html"),
                ("img/a.png", "image/png"),
                ("app.js", "text/javascript")
            ]
        );
        assert_eq!(
            std::fs::read(dir.path().join("out/img/a.png")).expect("read"),
            b"\x89PNG"
        );
    }

    #[test]
    fn issue_17_paths_that_escape_links_and_unknown_kinds_are_refused_and_nothing_is_left() {
        for (name, why) in [
            ("../evil.html", "`..`"),
            ("a/../../evil.html", "`..`"),
            ("/etc/evil.html", "relative"),
            ("a\\b.html", "relative"),
            ("C:/x.html", "relative"),
            (".hidden/x.html", "hidden"),
            ("run.exe", "not a kind"),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let zip = archive(dir.path(), &[("index.html", b"ok"), (name, b"x")]);
            let out = dir.path().join("out");
            let err = unpack(&zip, &out, 1 << 20).expect_err(name);
            assert!(err.contains(why), "{name}: {err}");
            assert!(!out.exists(), "{name}: a refused archive left files");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("link.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
        zip.add_symlink("index.html", "/etc/passwd", SimpleFileOptions::default())
            .expect("link");
        zip.finish().expect("finish");
        let err = unpack(&path, &dir.path().join("out"), 1 << 20).expect_err("link");
        assert!(err.contains("link"), "{err}");
        let zip = archive(dir.path(), &[("a.html", b"1"), ("A.html", b"2")]);
        assert!(
            unpack(&zip, &dir.path().join("out2"), 1 << 20)
                .expect_err("twice")
                .contains("twice")
        );
    }

    /// A small archive that unpacks past the limit stops at the limit.
    #[test]
    fn issue_17_a_zip_bomb_stops_at_the_upload_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zeros = vec![0u8; 8 << 20];
        let zip = archive(dir.path(), &[("index.html", b"ok"), ("big.txt", &zeros)]);
        assert!(std::fs::metadata(&zip).expect("size").len() < 100_000);
        let out = dir.path().join("out");
        let err = unpack(&zip, &out, 1 << 20).expect_err("bomb");
        assert!(err.contains("more than"), "{err}");
        assert!(!out.exists());
    }
}
