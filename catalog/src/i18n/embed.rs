//! Build time: compiles a crate's `locales/*.ftl` in and lists the keys its
//! code asks for with `tr!`, so that `shanlu i18n check` can compare the two
//! without the sources at hand.
//!
//! The build scripts of `edge-cache` and `server` include this file with
//! `#[path]`, so it uses std only. Adding a language is adding its file:
//! the build script picks up every `locales/<code>.ftl`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Writes `$OUT_DIR/locales.rs` for the crate at `manifest_dir`:
/// `FILES: &[(&str, &str)]`, each language's code and text, Chinese first
/// and English last; and `USED: &[&str]`, the keys its code uses.
pub fn generate(manifest_dir: &Path, out_dir: &Path) -> Result<(), String> {
    let locales = manifest_dir.join("locales");
    let sources = manifest_dir.join("src");
    println!("cargo:rerun-if-changed={}", locales.display());
    println!("cargo:rerun-if-changed={}", sources.display());

    let files = language_files(&locales)?;
    for required in ["zh", "en"] {
        if !files.iter().any(|(code, _)| code == required) {
            return Err(format!(
                "{}: {required}.ftl is missing; Chinese and English are every language's fallbacks",
                locales.display()
            ));
        }
    }

    let mut used = Vec::new();
    let mut stack = vec![sources];
    while let Some(dir) = stack.pop() {
        for path in read_dir(&dir)? {
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path)
                    .map_err(|err| format!("reading {}: {err}", path.display()))?;
                used.extend(keys_in(&text).map_err(|err| format!("{}: {err}", path.display()))?);
            }
        }
    }
    used.sort();
    used.dedup();

    let mut out = String::from("pub static FILES: &[(&str, &str)] = &[\n");
    for (code, path) in &files {
        let _ = writeln!(
            out,
            "    ({code:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\npub static USED: &[&str] = &[\n");
    for key in &used {
        let _ = writeln!(out, "    {key:?},");
    }
    out.push_str("];\n");
    fs::write(out_dir.join("locales.rs"), out)
        .map_err(|err| format!("writing {}: {err}", out_dir.display()))
}

/// Every `<code>.ftl` in `dir`: its code and path, Chinese first, English
/// last, the others by code. A `.ftl` not named by a language code is an
/// error.
pub fn language_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    for path in read_dir(dir)? {
        let Some(code) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ftl"))
        else {
            continue;
        };
        if !is_language_code(code) {
            return Err(format!(
                "{}: a language file is named by its BCP 47 code, such as bo.ftl or lis.ftl",
                path.display()
            ));
        }
        files.push((code.to_owned(), path));
    }
    files.sort_by_key(|(code, _)| (code != "zh", code == "en", code.clone()));
    Ok(files)
}

/// The keys of every `tr!(lang, "key" …)` in a Rust source file. A `tr!`
/// without a literal key is an error: its key could not be checked.
pub fn keys_in(source: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("tr!(") {
        let before = &rest[..at];
        rest = &rest[at + 4..];
        // `str!(`, `attr!(`, … are other macros.
        if before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let line = source[..source.len() - rest.len()].lines().count();
        // The key is the first string literal, after the language and a comma.
        let key = rest.find('"').and_then(|quote| {
            let head = &rest[..quote];
            let literal = rest[quote + 1..].split('"').next()?;
            (head.contains(',') && !head.contains([';', '{', '}'])).then_some(literal)
        });
        match key {
            Some(key) if is_key(key) => keys.push(key.to_owned()),
            _ => {
                return Err(format!(
                    "line {line}: tr! needs a literal key of lowercase letters, digits and '-' \
                     as its second argument, so that `shanlu i18n check` can see it"
                ));
            }
        }
    }
    Ok(keys)
}

fn is_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether a file name (less `.ftl`) is shaped like a BCP 47 language tag.
pub fn is_language_code(code: &str) -> bool {
    let mut parts = code.split('-');
    parts.next().is_some_and(|primary| {
        (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_lowercase())
    }) && parts.all(|part| {
        (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut paths = fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|err| format!("reading {}: {err}", dir.display()))?;
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_tr_calls_only() {
        let source = r#"
            let a = tr!(lang, "site");
            let b = catalog::tr!(self.lang(), "lesson-count", count = n);
            let c = attr!(x, "not-a-key");
            html! { (tr!(lang,
                "results-for", query = q)) }
        "#;
        assert_eq!(
            keys_in(source).expect("keys"),
            ["site", "lesson-count", "results-for"]
        );
        let err = keys_in("let k = \"x\";\ntr!(lang, k)").expect_err("not literal");
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(keys_in(r#"tr!(lang, "Site")"#).is_err());
    }

    #[test]
    fn a_new_file_is_a_new_language_with_no_code_to_change() {
        let crate_dir = tempfile::tempdir().expect("temp dir");
        let (locales, src) = (
            crate_dir.path().join("locales"),
            crate_dir.path().join("src/ui"),
        );
        fs::create_dir_all(&locales).expect("locales");
        fs::create_dir_all(&src).expect("src");
        for code in ["en", "lis", "zh", "bo"] {
            fs::write(locales.join(format!("{code}.ftl")), "language-name = x\n").expect("ftl");
        }
        fs::write(locales.join("README.txt"), "not a language").expect("readme");
        fs::write(
            src.join("page.rs"),
            r#"tr!(lang, "site"); tr!(lang, "search"); tr!(l, "site");"#,
        )
        .expect("rs");
        let out = tempfile::tempdir().expect("out");
        generate(crate_dir.path(), out.path()).expect("generate");
        let code = fs::read_to_string(out.path().join("locales.rs")).expect("locales.rs");
        let order: Vec<&str> = ["\"zh\"", "\"bo\"", "\"lis\"", "\"en\""]
            .into_iter()
            .filter(|code_literal| code.contains(&format!("({code_literal}, include_str!")))
            .collect();
        assert_eq!(order.len(), 4, "{code}");
        let positions: Vec<usize> = order.iter().map(|c| code.find(*c).expect("code")).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "zh first, en last: {code}"
        );
        assert!(
            code.contains("pub static USED: &[&str] = &[\n    \"search\",\n    \"site\",\n];"),
            "{code}"
        );

        fs::write(locales.join("Lisu.ftl"), "").expect("bad name");
        let err = generate(crate_dir.path(), out.path()).expect_err("bad name");
        assert!(err.contains("Lisu.ftl") && err.contains("BCP 47"), "{err}");
        fs::remove_file(locales.join("Lisu.ftl")).expect("rm");
        fs::remove_file(locales.join("en.ftl")).expect("rm");
        let err = generate(crate_dir.path(), out.path()).expect_err("no en");
        assert!(err.contains("en.ftl is missing"), "{err}");
    }

    #[test]
    fn language_codes_are_bcp47_shaped() {
        for good in ["zh", "ii", "bo", "en", "lis", "bo-x-khams", "bo-x-amdo"] {
            assert!(is_language_code(good), "{good}");
        }
        for bad in ["", "chinese", "z", "ZH", "bo_khams", "bo-", "../zh"] {
            assert!(!is_language_code(bad), "{bad}");
        }
    }
}
