//! `gatehouse lock-out` and `gatehouse unlock`: the request is left in `journal.db` for the running server to
//! carry out, or carried out on a core of our own when no server runs; then what it did is printed.

use super::Failure;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::journal::Actor;
use crate::requests::{self, Finished, OperatorCommand};
use anyhow::anyhow;

/// Hands a lock-out or unlock to the running server, or to a core of our own, and prints what it did.
pub fn run(
    config: Config,
    command: &crate::requests::OperatorCommand,
    by: &crate::journal::Actor,
) -> Result<(), Failure> {
    let vault = super::open_vault(&config)?;
    let finished = submit(config, command, by)?;
    // The stored outcome names people by pseudonym; the person at the terminal reads the identifier.
    let outcome = vault.reveal_text(&finished.outcome);
    if finished.refused {
        return Err(Failure::Runtime(anyhow!(outcome)));
    }
    match finished.position {
        Some(position) => println!("{outcome} (by {by}; journal position {position})"),
        None => println!("{outcome}"),
    }
    Ok(())
}

/// What `gatehouse lock-out` / `unlock` do: leave the request, then let the running server carry it out, or,
/// when none runs, start a core of our own (which takes the data directory's lock) and carry it out here.
pub fn submit(config: Config, command: &OperatorCommand, by: &Actor) -> anyhow::Result<Finished> {
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    crate::db::upgrade_journal(&paths.journal())?;
    let journal = paths.journal();
    let id = requests::request(&journal, command, by)?;
    if super::own_core::server_holds(&paths)? {
        return requests::wait_for(&journal, id, requests::SERVER_WAIT);
    }
    let journal_path = journal.clone();
    let carried_out = super::own_core::run(config, async move |core| {
        requests::process_pending(&core.state().registry, &core.state().vault, &journal_path).await
    });
    match carried_out {
        Ok(_) => requests::finished(&requests::open(&journal)?, id)?
            .ok_or_else(|| anyhow::anyhow!("request {id} was not carried out")),
        // A server started between the check and our core taking the lock: its loop carries the request out.
        Err(_) if super::own_core::server_holds(&paths).unwrap_or(false) => {
            requests::wait_for(&journal, id, requests::SERVER_WAIT)
        }
        Err(error) => Err(error),
    }
}
