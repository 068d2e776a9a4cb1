//! SIGINT and SIGTERM for the long-running commands (relay, sqlite-server).
//!
//! The handlers are installed when [`install`] is called, not when its
//! future is first polled: a command installs them before it prints its
//! `bound …` line, so a signal sent by whoever waited for that line is
//! caught instead of killing the process.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

/// Installs the handlers now; the future completes on the first SIGINT or
/// SIGTERM.
///
/// # Errors
/// If a handler cannot be installed (no signal driver on the runtime).
pub fn install() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}
