//! Ctrl-C and SIGTERM, as every part of the CLI hears them: [`Signals::next`] resolves
//! on either with the exit code a shell reports for it, and [`Interrupt::error`] is the
//! error that ends a run so.

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

/// The run's listeners for Ctrl-C and SIGTERM, made before the work they may stop:
/// a signal that comes while nothing awaits them is kept for the next
/// [`Signals::next`], never lost (a quick second Ctrl-C).
#[derive(Debug)]
pub(crate) struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Listens from now on; a signal no handler can be installed for is never heard.
    pub(crate) fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves on the next Ctrl-C or SIGTERM (one already come: at once).
    pub(crate) async fn next(&mut self) -> Interrupt {
        let interrupted = Interrupt {
            code: EXIT_INTERRUPTED,
            why: "interrupted",
        };
        #[cfg(unix)]
        {
            async fn heard(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        if signal.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = heard(&mut self.interrupt) => interrupted,
                () = heard(&mut self.terminate) => Interrupt {
                    code: EXIT_TERMINATED,
                    why: "terminated",
                },
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            interrupted
        }
    }
}
