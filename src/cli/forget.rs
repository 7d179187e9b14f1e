//! `gatehouse forget SUBJECT` (admin): makes a person's identifier unreadable everywhere (GDPR erasure). The
//! identifier is looked up in the subject vault here and only its pseudonym goes into the request, which the
//! running server (or a core of our own) carries out (`privacy::forget`). With `--as`, the user must be an admin.

use super::Failure;
use crate::config::Config;
use crate::domain::SubjectId;
use crate::journal::Actor;
use crate::requests::OperatorCommand;
use anyhow::anyhow;

pub fn forget(config: Config, subject: &str, as_user: Option<&str>) -> Result<(), Failure> {
    let identifier = SubjectId::parse(subject.trim()).map_err(|e| Failure::Usage(anyhow!("forget: {e}")))?;
    let by = admin(&config, as_user)?;
    let vault = super::open_vault(&config)?;
    let Some(person) = vault.find(&identifier)? else {
        println!("{subject} is not known here: nothing is stored under that identifier, so there is nothing to forget");
        return Ok(());
    };
    let finished = super::operator::submit(config, &OperatorCommand::Forget { person }, &by)?;
    if finished.refused {
        return Err(Failure::Runtime(anyhow!("forget {subject}: {}", finished.outcome)));
    }
    println!(
        "{subject}: {} (by {by}{})",
        finished.outcome,
        finished
            .position
            .map(|p| format!("; journal position {p}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// The actor: `cli` (whoever may run this on the data directory) or, with `--as`, a user who is an admin.
fn admin(config: &Config, as_user: Option<&str>) -> Result<Actor, Failure> {
    let Some(name) = as_user else {
        return Ok(Actor::cli());
    };
    let role = super::user_role(config, name)?;
    match role.as_deref() {
        Some("admin") => Ok(Actor::user(name)),
        Some(_) => Err(Failure::Usage(anyhow!(
            "--as {name}: forgetting a person takes an admin"
        ))),
        None => Err(Failure::Usage(anyhow!("--as {name}: no such user"))),
    }
}
