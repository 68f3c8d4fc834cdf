//! Ctrl-C and SIGTERM, as every part of the CLI hears them: [`interrupted`] resolves
//! on either with the exit code a shell reports for it, and [`CliError::interrupted`]
//! is the error that ends a run so.

use super::error::CliError;

/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code after SIGTERM (128 + SIGTERM).
pub const EXIT_TERMINATED: u8 = 143;

/// A signal that stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interrupt {
    /// The exit code it ends the run with.
    pub code: u8,
    /// `interrupted` or `terminated`.
    pub why: &'static str,
}

impl Interrupt {
    /// The error ending the run after it.
    pub(crate) fn error(self) -> CliError {
        CliError {
            code: self.code,
            message: self.why.to_string(),
        }
    }
}

/// Whether `code` is the exit code of an interrupt.
pub(crate) fn is_interrupt(code: u8) -> bool {
    code == EXIT_INTERRUPTED || code == EXIT_TERMINATED
}

/// Resolves on Ctrl-C or SIGTERM; never resolves when no handler can be installed.
pub(crate) async fn interrupted() -> Interrupt {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let interrupt = Interrupt {
        code: EXIT_INTERRUPTED,
        why: "interrupted",
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = async {
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => interrupt,
            () = terminate => Interrupt { code: EXIT_TERMINATED, why: "terminated" },
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c.await;
        interrupt
    }
}
