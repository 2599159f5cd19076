//! The tests' S3 server (s3s-fs over a temporary folder) as a program, for
//! the benchmarks in `tools/bench/`: prints the `AWS_*` settings to reach it
//! as `export` lines, then writes what its clients read (`gets bytes`) to the
//! file given as its one argument every 200 ms, until its stdin closes.

use std::io::{Read, Write};
use std::time::Duration;

fn main() {
    let stats = std::env::args()
        .nth(1)
        .expect("usage: s3-server STATS_FILE (then close stdin to stop it)");
    let server = shanlu_tests::s3::S3Server::start();
    let mut out = std::io::stdout().lock();
    for (name, value) in server.env() {
        writeln!(out, "export {name}={value}").expect("stdout");
    }
    writeln!(out, "export S3_BUCKET={}", server.bucket()).expect("stdout");
    drop(out);
    let (done, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Ends when the benchmark closes our stdin.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = done.send(());
    });
    // Dropping the server at the end deletes its folder.
    while stopped.try_recv().is_err() {
        let (gets, bytes) = server.reads();
        let tmp = format!("{stats}.tmp");
        if std::fs::write(&tmp, format!("{gets} {bytes}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &stats);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
