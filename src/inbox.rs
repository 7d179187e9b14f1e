//! The running server's side of commands given in other processes: a command line leaves its request in
//! `journal.db` (a dead letter to re-drive, a lock-out), and the server polls for such requests and carries them
//! out, since only it may append to the journal.

use std::time::Duration;

/// Starts a loop on the current actix system that runs `work` every `every` until the system stops. Errors are
/// logged once until they change (a full disk would otherwise log the same line twice a second) and retried,
/// never fatal. `what` names the work in the log: "re-drive dead letters".
pub fn spawn_polling<F, Fut>(what: &'static str, every: Duration, mut work: F)
where
    F: FnMut() -> Fut + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error: Option<String> = None;
        loop {
            ticks.tick().await;
            match work().await {
                Ok(()) => last_error = None,
                Err(error) => {
                    let text = format!("{error:#}");
                    if last_error.as_ref() != Some(&text) {
                        tracing::error!(error = %text, "cannot {what}; retrying");
                    }
                    last_error = Some(text);
                }
            }
        }
    });
}
