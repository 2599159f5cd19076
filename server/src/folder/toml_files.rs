//! `course.toml` and `lesson.toml`: their fields and the checks on them, and
//! the names, ids, media types and durations a course folder is read with.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CourseToml {
    pub(super) id: Option<String>,
    pub(super) title: Option<BTreeMap<String, String>>,
    pub(super) description: Option<BTreeMap<String, String>>,
    pub(super) subject: Option<String>,
    pub(super) grade: Option<StringOrNumber>,
    pub(super) languages: Option<Vec<String>>,
    pub(super) tags: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LessonToml {
    pub(super) id: Option<String>,
    pub(super) title: Option<BTreeMap<String, String>>,
    pub(super) summary: Option<BTreeMap<String, String>>,
    pub(super) entry: Option<String>,
    pub(super) tags: Option<Vec<String>>,
    pub(super) languages: Option<Vec<String>>,
    /// Seconds, or text such as "15m", "1h20m", "90s", "12:30".
    pub(super) duration: Option<StringOrNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringOrNumber {
    Number(i64),
    Text(String),
}

impl StringOrNumber {
    pub(super) fn into_text(self) -> String {
        match self {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::Text(text) => text,
        }
    }
}

/// A toml error as "line L, column C: message".
pub(super) fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_owned();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map(|l| l.chars().count())
                .unwrap_or(0)
                + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

pub(super) fn localized(map: Option<BTreeMap<String, String>>) -> Option<LocalizedText> {
    map.filter(|m| !m.is_empty())
        .map(|m| m.into_iter().collect())
}

/// "03-加法_练习" → "加法 练习" in Chinese.
pub fn title_from_name(name: &str) -> LocalizedText {
    let trimmed = name.trim_start_matches(|c: char| c.is_ascii_digit());
    let trimmed = if trimmed.len() < name.len() {
        trimmed.trim_start_matches(['-', '_', '.', ' '])
    } else {
        trimmed
    };
    let base = if trimmed.is_empty() { name } else { trimmed };
    let title: String = base
        .chars()
        .map(|c| if c == '-' || c == '_' { ' ' } else { c })
        .collect();
    LocalizedText::single(guess_language(&title), title)
}

/// `index.html`, else the first video, else the first page, else the first file.
pub(super) fn infer_entry(files: &[SourceFile]) -> String {
    let pick = files
        .iter()
        .find(|f| f.rel == "index.html" || f.rel == "index.htm")
        .or_else(|| files.iter().find(|f| f.media_type.starts_with("video/")))
        .or_else(|| files.iter().find(|f| f.media_type == "text/html"))
        .or_else(|| files.first());
    pick.map(|f| f.rel.clone()).unwrap_or_default()
}

/// Normalizes a relative path; `None` if it is absolute or leaves its folder.
pub(super) fn relative_inside(path: &str) -> Option<String> {
    if path.contains('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

pub(super) fn check_id(path: &Path, id: &str) -> Result<(), FolderError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if id.contains(['/', '\\']) || id == "." || id == ".." {
        Some("it may not contain / or \\ or be . or ..")
    } else if id.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(FolderError::BadId {
            path: path.to_owned(),
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The media type shanlu serves a file with.
pub fn media_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let fixed = match ext.as_str() {
        "mp4" | "m4v" => Some("video/mp4"),
        "m4a" => Some("audio/mp4"),
        "webm" => Some("video/webm"),
        "ogv" => Some("video/ogg"),
        "oga" | "ogg" | "opus" => Some("audio/ogg"),
        "mp3" => Some("audio/mpeg"),
        "vtt" => Some("text/vtt"),
        "srt" => Some("application/x-subrip"),
        "html" | "htm" => Some("text/html"),
        "md" => Some("text/markdown"),
        "txt" => Some("text/plain"),
        "woff2" => Some("font/woff2"),
        _ => None,
    };
    match fixed {
        Some(kind) => kind.to_owned(),
        None => mime_guess::from_ext(&ext)
            .first_or_octet_stream()
            .essence_str()
            .to_owned(),
    }
}

/// "600", "15m", "1h20m", "90s", "12:30" → seconds.
pub(super) fn parse_duration(text: &str) -> Option<u32> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u32>() {
        return Some(secs);
    }
    if text.contains(':') {
        let mut total: u32 = 0;
        for part in text.split(':') {
            total = total
                .checked_mul(60)?
                .checked_add(part.parse::<u32>().ok()?)?;
        }
        return Some(total);
    }
    let (mut total, mut number) = (0u32, String::new());
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.parse::<u32>().ok()?.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(total)
}

/// Compares names so that digit runs compare as numbers: "2-x" < "10-x".
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let a_len = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                let b_len = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
                let (a_num, b_num) = (
                    a[..a_len].trim_start_matches('0'),
                    b[..b_len].trim_start_matches('0'),
                );
                let order = a_num
                    .len()
                    .cmp(&b_num.len())
                    .then_with(|| a_num.cmp(b_num))
                    .then_with(|| a_len.cmp(&b_len));
                if order != Ordering::Equal {
                    return order;
                }
                a = &a[a_len..];
                b = &b[b_len..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

/// `course.toml` text read as [`read_course`] reads it, for the fuzz targets in
/// `tools/fuzz`: the id it sets, checked, or the message `publish` would print.
#[doc(hidden)]
pub fn parse_course_toml(text: &str) -> Result<Option<String>, String> {
    let toml: CourseToml = toml::from_str(text).map_err(|err| describe_toml_error(text, &err))?;
    let path = Path::new("course.toml");
    let checked = toml.id.map(|id| check_id(path, &id).map(|()| id));
    checked.transpose().map_err(|err| err.to_string())
}

/// `lesson.toml` text likewise: the entry as normalized and the duration in seconds.
#[doc(hidden)]
pub fn parse_lesson_toml(text: &str) -> Result<(Option<String>, Option<u32>), String> {
    let toml: LessonToml = toml::from_str(text).map_err(|err| describe_toml_error(text, &err))?;
    let entry = toml
        .entry
        .map(|entry| relative_inside(&entry).ok_or(entry))
        .transpose()?;
    let duration = toml.duration.map(StringOrNumber::into_text);
    let seconds = duration
        .map(|text| parse_duration(&text).ok_or(text))
        .transpose()?;
    Ok((entry, seconds))
}
