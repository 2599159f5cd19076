//! The AFL++ entry point: `shanlu-fuzz <target>` reads test cases from AFL++
//! (persistent mode, in shared memory) and runs them through that target.
//! A panic, an abort or running out of memory is a crash.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = shanlu_fuzz::Target::from_name(&name) else {
        eprintln!(
            "usage: shanlu-fuzz <target>, where target is one of: {}",
            shanlu_fuzz::Target::ALL.map(|t| t.name()).join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz(true, |data| target.run(data));
}
