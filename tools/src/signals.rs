//! Ctrl-C and SIGTERM (systemd's stop) both mean: finish cleanly.

use tokio_util::sync::CancellationToken;

/// Resolves when the process is asked to stop.
pub async fn stop_requested() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// A token cancelled when the process is asked to stop. Call inside a runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        stop_requested().await;
        signal.cancel();
    });
    shutdown
}
