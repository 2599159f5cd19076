use super::*;

#[test]
fn natural_order_puts_2_before_10() {
    let mut names = vec!["10-b", "2-a", "01-z", "a", "第二课"];
    names.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(names, ["01-z", "2-a", "10-b", "a", "第二课"]);
}

#[test]
fn titles_are_inferred_from_folder_names_in_their_script() {
    assert_eq!(
        title_from_name("01-counting-to-ten").get(&["en"]),
        Some("counting to ten")
    );
    assert_eq!(title_from_name("03_加法").exact("zh"), Some("加法"));
    assert_eq!(title_from_name("02-ꆈꌠꁱꂷ").exact("ii"), Some("ꆈꌠꁱꂷ"));
    assert_eq!(title_from_name("2024").get(&[]), Some("2024"));
}

#[test]
fn durations_parse_in_every_documented_form() {
    assert_eq!(parse_duration("600"), Some(600));
    assert_eq!(parse_duration("15m"), Some(900));
    assert_eq!(parse_duration("1h20m"), Some(4800));
    assert_eq!(parse_duration("12:30"), Some(750));
    assert_eq!(parse_duration("soon"), None);
    assert_eq!(parse_duration("5x"), None);
}

#[test]
fn entry_paths_must_stay_inside_the_lesson() {
    assert_eq!(relative_inside("./img/a.png").as_deref(), Some("img/a.png"));
    assert_eq!(relative_inside("../x.html"), None);
    assert_eq!(relative_inside("/etc/passwd"), None);
    assert_eq!(relative_inside("a\\..\\b"), None);
}

/// A course folder in a fresh temporary folder: `rel → text` files.
fn course(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("course");
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    (tmp, root)
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

fn read_all(plan: &CoursePlan, file: &SourceFile) -> Vec<u8> {
    let mut bytes = Vec::new();
    plan.open(file)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    bytes
}

fn lesson_file<'a>(plan: &'a CoursePlan, rel: &str) -> &'a SourceFile {
    plan.all_files()
        .find(|file| file.rel == rel)
        .unwrap_or_else(|| panic!("{rel} is in the plan"))
}

#[test]
fn issue_11_symlinks_inside_the_folder_are_read_as_their_targets() {
    let (_tmp, root) = course(&[("01-a/index.html", "<p>shared</p>"), ("02-b/x.txt", "x")]);
    symlink("../01-a/index.html", root.join("02-b/index.html"));
    // An absolute link naming a file inside the folder works too.
    let absolute = std::fs::canonicalize(root.join("01-a/index.html")).expect("canonical");
    symlink(&absolute, root.join("02-b/page.html"));
    let plan = read_course(&root).expect("a folder with inside links is accepted");
    let linked = plan.lessons[1]
        .files
        .iter()
        .find(|f| f.rel == "index.html")
        .expect("linked file");
    assert!(linked.symlink);
    assert_eq!(linked.media_type, "text/html");
    assert_eq!(read_all(&plan, linked), b"<p>shared</p>");
    let page = plan.lessons[1]
        .files
        .iter()
        .find(|f| f.rel == "page.html")
        .expect("absolute link");
    assert_eq!(read_all(&plan, page), b"<p>shared</p>");
}

#[test]
fn issue_11_symlinks_leaving_the_folder_are_refused() {
    let (tmp, root) = course(&[("01-a/index.html", "<p>a</p>")]);
    std::fs::write(tmp.path().join("secret"), "the origin key").expect("write");
    for target in [
        PathBuf::from("../../secret"),
        tmp.path().join("secret"),
        PathBuf::from("/etc/hostname"),
    ] {
        let link = root.join("01-a/leak.txt");
        let _ = std::fs::remove_file(&link);
        symlink(&target, &link);
        let err = read_course(&root).expect_err("an escaping link is refused");
        assert!(
            matches!(&err, FolderError::SymlinkEscapes { path, .. } if path.ends_with("01-a/leak.txt")),
            "{target:?}: {err}"
        );
    }
    // A link to a link that leaves is refused just the same.
    std::fs::remove_file(root.join("01-a/leak.txt")).expect("rm");
    symlink("../../secret", root.join("01-a/hop"));
    symlink("hop", root.join("01-a/leak.txt"));
    assert!(matches!(
        read_course(&root),
        Err(FolderError::SymlinkEscapes { .. })
    ));
}

#[test]
fn issue_11_a_toml_file_may_not_leave_the_folder_either() {
    let (tmp, root) = course(&[("01-a/index.html", "<p>a</p>")]);
    std::fs::write(tmp.path().join("elsewhere.toml"), "subject = \"x\"\n").expect("write");
    symlink("../elsewhere.toml", root.join("course.toml"));
    let err = read_course(&root).expect_err("refused");
    assert!(
        matches!(&err, FolderError::SymlinkEscapes { path, .. } if path.ends_with("course.toml")),
        "{err}"
    );
}

#[test]
fn issue_11_symlinked_folders_are_refused() {
    let (_tmp, root) = course(&[("01-a/img/a.svg", "<svg/>"), ("01-a/index.html", "a")]);
    symlink("img", root.join("01-a/pictures"));
    let err = read_course(&root).expect_err("refused");
    assert!(
        matches!(&err, FolderError::SymlinkedFolder { path } if path.ends_with("01-a/pictures")),
        "{err}"
    );
    std::fs::remove_file(root.join("01-a/pictures")).expect("rm");
    symlink("01-a", root.join("02-b"));
    assert!(matches!(
        read_course(&root),
        Err(FolderError::SymlinkedFolder { .. })
    ));
}

#[test]
fn issue_11_pipes_are_refused_without_blocking() {
    let (_tmp, root) = course(&[("01-a/index.html", "a")]);
    let fifo = root.join("01-a/pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        FileType::Fifo,
        Mode::RUSR | Mode::WUSR,
        0,
    )
    .expect("mkfifo");
    let err = read_course(&root).expect_err("refused");
    assert!(
        matches!(&err, FolderError::NotRegular { path } if path.ends_with("01-a/pipe")),
        "{err}"
    );
    // Through a symlink, the pipe is opened without blocking and refused by its metadata.
    std::fs::rename(&fifo, root.join("01-a/.pipe")).expect("hide");
    symlink(".pipe", root.join("01-a/pipe"));
    assert!(matches!(
        read_course(&root),
        Err(FolderError::NotRegular { .. })
    ));
}

#[test]
fn issue_11_a_file_swapped_after_the_walk_is_refused_at_open() {
    let (tmp, root) = course(&[("01-a/index.html", "<p>a</p>"), ("01-a/notes.txt", "notes")]);
    std::fs::write(tmp.path().join("secret"), "SECRET").expect("write");
    let plan = read_course(&root).expect("read");
    let notes = lesson_file(&plan, "notes.txt").clone();
    assert_eq!(read_all(&plan, &notes), b"notes");

    // A symlink put in its place is not followed.
    let path = root.join("01-a/notes.txt");
    std::fs::remove_file(&path).expect("rm");
    symlink(tmp.path().join("secret"), &path);
    let err = plan
        .open(&notes)
        .expect_err("a swapped-in symlink is refused");
    assert!(
        matches!(&err, FolderError::Changed { path } if path.ends_with("01-a/notes.txt")),
        "{err}"
    );
    assert!(err.to_string().contains("publish again"), "{err}");

    // Another file with the same bytes is still another file (the first
    // is kept aside so that its inode number cannot be reused).
    std::fs::remove_file(&path).expect("rm");
    std::fs::write(&path, "notes").expect("write");
    let plan = read_course(&root).expect("read again");
    let notes = lesson_file(&plan, "notes.txt").clone();
    std::fs::rename(&path, root.join("01-a/.kept")).expect("keep");
    std::fs::write(&path, "notes").expect("write");
    assert!(matches!(
        plan.open(&notes),
        Err(FolderError::Changed { .. })
    ));

    // A folder on the way swapped for a symlink to a copy is refused too.
    let plan = read_course(&root).expect("read again");
    let notes = lesson_file(&plan, "notes.txt").clone();
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).expect("mkdir");
    std::fs::write(copy.join("notes.txt"), "notes").expect("write");
    std::fs::rename(root.join("01-a"), tmp.path().join("moved")).expect("move");
    symlink(&copy, root.join("01-a"));
    assert!(matches!(
        plan.open(&notes),
        Err(FolderError::Changed { .. })
    ));
}

#[test]
fn issue_11_a_linked_file_retargeted_after_the_walk_is_refused_at_open() {
    let (tmp, root) = course(&[
        ("01-a/index.html", "<p>a</p>"),
        ("01-a/other.html", "<p>b</p>"),
    ]);
    std::fs::write(tmp.path().join("secret"), "SECRET").expect("write");
    symlink("index.html", root.join("01-a/link.html"));
    let plan = read_course(&root).expect("read");
    let link = lesson_file(&plan, "link.html").clone();
    assert_eq!(read_all(&plan, &link), b"<p>a</p>");
    // Retargeted inside the folder: another file, refused.
    std::fs::remove_file(root.join("01-a/link.html")).expect("rm");
    symlink("other.html", root.join("01-a/link.html"));
    assert!(matches!(plan.open(&link), Err(FolderError::Changed { .. })));
    // Retargeted outside: the kernel refuses to leave the folder.
    std::fs::remove_file(root.join("01-a/link.html")).expect("rm");
    symlink("../../secret", root.join("01-a/link.html"));
    assert!(matches!(
        plan.open(&link),
        Err(FolderError::SymlinkEscapes { .. })
    ));
}

/// A stand-in for an origin data folder with a key, beside or around the course.
fn origin_at(dir: &Path) -> Guard {
    std::fs::create_dir_all(dir.join("tls")).expect("mkdir");
    std::fs::write(dir.join("origin.key"), "00".repeat(32)).expect("write");
    std::fs::write(dir.join("tls/key.der"), "tls key").expect("write");
    Guard::origin(dir, &["origin.key", "tls", "tls/key.der"]).expect("guard")
}

#[test]
fn issue_11_a_hard_link_to_the_origin_key_is_refused() {
    let (tmp, root) = course(&[("01-a/index.html", "a")]);
    let guard = origin_at(&tmp.path().join("origin"));
    read_course_guarded(&root, &guard).expect("a course beside the origin is fine");
    std::fs::hard_link(
        tmp.path().join("origin/origin.key"),
        root.join("01-a/key.txt"),
    )
    .expect("hard link");
    let err = read_course_guarded(&root, &guard).expect_err("refused");
    assert!(
        matches!(&err, FolderError::OriginFile { path, origin } if path.ends_with("01-a/key.txt") && origin.ends_with("origin.key")),
        "{err}"
    );
    // As the course.toml too.
    std::fs::remove_file(root.join("01-a/key.txt")).expect("rm");
    std::fs::hard_link(
        tmp.path().join("origin/tls/key.der"),
        root.join("course.toml"),
    )
    .expect("hard link");
    assert!(matches!(
        read_course_guarded(&root, &guard),
        Err(FolderError::OriginFile { .. })
    ));
}

#[test]
fn issue_11_a_course_folder_inside_or_around_the_origin_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("origin");
    let guard = origin_at(&data);
    let write = |path: PathBuf| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, "a").expect("write");
    };

    let inside = data.join("courses/maths");
    write(inside.join("01-a/index.html"));
    let err = read_course_guarded(&inside, &guard).expect_err("inside");
    assert!(matches!(err, FolderError::InsideOrigin { .. }), "{err}");
    // The data folder itself, reached through a symlink, is inside too.
    symlink(&data, tmp.path().join("alias"));
    assert!(matches!(
        read_course_guarded(&tmp.path().join("alias"), &guard),
        Err(FolderError::InsideOrigin { .. })
    ));

    // A course folder that holds the data folder, hidden or not.
    let around = tmp.path().join("around");
    write(around.join("01-a/index.html"));
    let guard = origin_at(&around.join(".origin"));
    let err = read_course_guarded(&around, &guard).expect_err("around");
    assert!(matches!(err, FolderError::HoldsOrigin { .. }), "{err}");
    assert!(err.to_string().contains(".origin"), "{err}");
}

#[test]
fn issue_11_folders_nest_only_so_deep() {
    let deep = format!("01-a/{}f.txt", "d/".repeat(MAX_DEPTH + 1));
    let (_tmp, root) = course(&[(deep.as_str(), "x")]);
    assert!(matches!(
        read_course(&root),
        Err(FolderError::TooDeep { .. })
    ));
}

#[test]
fn media_types_cover_lesson_files() {
    assert_eq!(media_type(Path::new("a.MP4")), "video/mp4");
    assert_eq!(media_type(Path::new("a.pdf")), "application/pdf");
    assert_eq!(media_type(Path::new("a.svg")), "image/svg+xml");
    assert_eq!(media_type(Path::new("noext")), "application/octet-stream");
}
