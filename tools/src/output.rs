//! Data on stdout, and a reader that closes the pipe early.
//!
//! `shanlu ls | head` closes stdout after ten lines. `println!` would panic on
//! the next line; [`outln!`] returns the error instead, and `main` ends the
//! command quietly with success when the error is only a closed pipe.

/// `println!` that returns `io::Result<()>` instead of panicking when stdout is gone.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        writeln!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// Whether `err` is, at its root, stdout's reader going away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("printing the listing");
        assert!(is_broken_pipe(&err));
        let other = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!is_broken_pipe(&other));
    }
}
