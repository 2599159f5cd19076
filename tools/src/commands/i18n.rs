//! `shanlu i18n check`: the classroom's and the dashboard's Fluent files
//! against the keys their code uses (issue 17).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use catalog::i18n::Words;

use crate::cli::I18nCheckArgs;

type Sources = (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

pub fn check(args: &I18nCheckArgs) -> anyhow::Result<ExitCode> {
    let sets: [(&str, Sources, Option<&Path>); 2] = [
        (
            "classroom",
            edge_cache::classroom::i18n::sources(),
            args.classroom.as_deref(),
        ),
        (
            "dashboard",
            server::fleet::dashboard::i18n::sources(),
            args.dashboard.as_deref(),
        ),
    ];
    let mut passed = true;
    for (name, (compiled, used), dir) in sets {
        let words = match dir {
            Some(dir) => Words::load(read_files(dir)?, used),
            None => Words::load(compiled.iter().copied(), used),
        };
        let check = words.check();
        let from = dir.map_or_else(|| "compiled in".to_owned(), |d| d.display().to_string());
        crate::outln!("# {name} ({from}): {} keys used by the code", words.used())?;
        crate::outln!("{check}")?;
        passed &= check.passed();
    }
    if passed {
        crate::outln!("ok")?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "i18n check failed: add the missing keys to zh.ftl and en.ftl, remove unused ones, \
             and fix the lines named above (docs/translating.md)"
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Every `<code>.ftl` in `dir` with its text.
fn read_files(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let paths = catalog::i18n::embed::language_files(dir).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !paths.is_empty(),
        "{} holds no .ftl files; give the folder with zh.ftl, en.ftl and the other languages",
        dir.display()
    );
    paths
        .into_iter()
        .map(|(code, path)| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok((code, text))
        })
        .collect()
}
