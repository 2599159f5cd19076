//! Teachers' own lessons at the school (issue 17): a teacher with the
//! school's teacher password uploads a recording, a worksheet or an HTML
//! lesson from her browser, and it appears in the classroom as a course
//! marked "this school", stored and pinned like any other.
//!
//! - [`password`]: the password's Argon2id hash and the upload limit, in
//!   `teachers.toml`.
//! - [`sessions`]: logins, session cookies, CSRF tokens, lockout.
//! - [`uploads`]: resumable uploads (the tus 1.0 core: create, offset,
//!   append), crash-safe, bounded.
//! - [`shelf`]: the school's course, its lessons and who made them.
//! - [`propose`]: lessons proposed to the bureau, carried upstream by the
//!   sync pass; the bureau's verdict comes back the same way.
//! - [`pages`]: `/teach`, its forms and the upload endpoints.
//!
//! Files are taken only when their first bytes say they are what their
//! name says ([`kind_of`]).

pub mod pages;
pub mod password;
pub mod propose;
pub mod sessions;
pub mod shelf;
pub mod uploads;
pub mod zipped;

use std::path::Path;
use std::sync::Arc;

use crate::teachers::sessions::Sessions;
use crate::teachers::uploads::{UploadError, Uploads};

/// The uploads folder in the edge's data folder.
pub const UPLOADS_DIR: &str = "uploads";

/// What the teachers' pages share.
pub struct Teachers {
    pub sessions: Sessions,
    pub uploads: Arc<Uploads>,
}

impl Teachers {
    /// The teachers' side of the edge in `dir`.
    pub fn open(dir: &Path, keep_free: u64) -> Result<Teachers, UploadError> {
        Ok(Teachers {
            sessions: Sessions::new(),
            uploads: Arc::new(Uploads::open(
                &dir.join(UPLOADS_DIR),
                password::max_upload_bytes(dir),
                keep_free,
            )?),
        })
    }
}

/// The kinds of file a lesson takes, by ending: the media type, and how
/// its first bytes must begin.
const KINDS: &[(&str, &str, Magic)] = &[
    ("mp4", "video/mp4", Magic::Ftyp),
    ("m4v", "video/mp4", Magic::Ftyp),
    (
        "webm",
        "video/webm",
        Magic::Prefix(&[0x1a, 0x45, 0xdf, 0xa3]),
    ),
    ("m4a", "audio/mp4", Magic::Ftyp),
    ("mp3", "audio/mpeg", Magic::Mp3),
    ("ogg", "audio/ogg", Magic::Prefix(b"OggS")),
    ("oga", "audio/ogg", Magic::Prefix(b"OggS")),
    ("wav", "audio/wav", Magic::Riff(b"WAVE")),
    ("pdf", "application/pdf", Magic::Prefix(b"%PDF-")),
    ("png", "image/png", Magic::Prefix(b"\x89PNG\r\n\x1a\n")),
    ("jpg", "image/jpeg", Magic::Prefix(&[0xff, 0xd8, 0xff])),
    ("jpeg", "image/jpeg", Magic::Prefix(&[0xff, 0xd8, 0xff])),
    ("webp", "image/webp", Magic::Riff(b"WEBP")),
    ("vtt", "text/vtt", Magic::Vtt),
    // An HTML lesson's folder, unpacked at lesson creation ([`zipped`]).
    ("zip", "application/zip", Magic::Prefix(b"PK\x03\x04")),
];

#[derive(Clone, Copy)]
enum Magic {
    Prefix(&'static [u8]),
    /// ISO base media: `ftyp` at byte 4.
    Ftyp,
    /// `RIFF`, a length, then this form type.
    Riff(&'static [u8; 4]),
    /// An ID3 tag or an MPEG audio frame sync.
    Mp3,
    /// `WEBVTT`, after an optional byte order mark.
    Vtt,
}

impl Magic {
    fn matches(self, head: &[u8]) -> bool {
        match self {
            Magic::Prefix(prefix) => head.starts_with(prefix),
            Magic::Ftyp => head.get(4..8) == Some(b"ftyp"),
            Magic::Riff(form) => head.starts_with(b"RIFF") && head.get(8..12) == Some(form),
            Magic::Mp3 => {
                head.starts_with(b"ID3")
                    || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
            }
            Magic::Vtt => head
                .strip_prefix(b"\xef\xbb\xbf")
                .unwrap_or(head)
                .starts_with(b"WEBVTT"),
        }
    }
}

/// Why a file named `name` is not a kind a lesson takes, by its ending.
pub fn check_ending(name: &str) -> Result<(), String> {
    let ending = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if KINDS.iter().any(|(e, _, _)| *e == ending) {
        Ok(())
    } else {
        Err(format!(
            "{name}: lessons take video (.mp4, .webm), audio (.mp3, .m4a, .ogg, .wav), \
             PDF, pictures (.png, .jpg, .webp) and subtitles (.vtt)"
        ))
    }
}

/// The bytes [`kind_of`] looks at.
pub const HEAD_BYTES: usize = 16;

/// The media type of a file named `name` whose first bytes are `head`, or
/// why a lesson does not take it.
pub fn kind_of(name: &str, head: &[u8]) -> Result<&'static str, String> {
    let ending = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    check_ending(name)?;
    let Some((_, media, magic)) = KINDS.iter().find(|(e, _, _)| *e == ending) else {
        return Err(format!("{name}: not a kind of file lessons take"));
    };
    if !magic.matches(head) {
        return Err(format!(
            "{name} is not a .{ending} file inside (its first bytes say otherwise); \
             upload the file itself, not a renamed one"
        ));
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_taken_only_when_they_are_what_their_name_says() {
        assert_eq!(kind_of("课.mp4", b"\0\0\0\x20ftypisom"), Ok("video/mp4"));
        assert_eq!(kind_of("Song.MP3", b"ID3\x04"), Ok("audio/mpeg"));
        assert_eq!(kind_of("a.mp3", &[0xff, 0xfb, 0x90]), Ok("audio/mpeg"));
        assert_eq!(kind_of("sheet.pdf", b"%PDF-1.7"), Ok("application/pdf"));
        assert_eq!(kind_of("a.wav", b"RIFF\0\0\0\0WAVEfmt "), Ok("audio/wav"));
        assert_eq!(kind_of("a.vtt", b"\xef\xbb\xbfWEBVTT\n"), Ok("text/vtt"));
        let renamed = kind_of("virus.pdf", b"MZ\x90\0").expect_err("an exe");
        assert!(renamed.contains("not a .pdf file"), "{renamed}");
        let exe = kind_of("setup.exe", b"MZ").expect_err("exe");
        assert!(exe.contains("lessons take"), "{exe}");
        assert!(kind_of("noending", b"%PDF-").is_err());
        assert!(kind_of("a.webp", b"RIFF\0\0\0\0WAVE").is_err());
    }
}
