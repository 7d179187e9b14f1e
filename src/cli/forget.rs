//! `gatehouse forget SUBJECT` (admin): makes a person's identifier unreadable everywhere (GDPR erasure). The
//! identifier is looked up in the subject vault here and only its pseudonym goes into the request, which the
//! running server (or a core of our own) carries out (`privacy::forget`). With `--as`, the user must be an admin.

use super::Failure;
use crate::config::Config;
use crate::domain::SubjectId;
use crate::requests::OperatorCommand;
use anyhow::anyhow;

pub fn forget(config: Config, subject: &str, as_user: Option<&str>) -> Result<(), Failure> {
    let identifier = SubjectId::parse(subject.trim()).map_err(|e| Failure::Usage(anyhow!("forget: {e}")))?;
    let by = super::admin_actor(&config, as_user, "forgetting a person")?;
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
