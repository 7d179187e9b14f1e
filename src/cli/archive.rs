//! `gatehouse archive [--before DATE]` moves old events out of the journal into archive files (what
//! `[retention]` does by itself while `serve` runs), with a progress bar; `gatehouse archive --verify` checks
//! every archive file against its manifest.

use super::Failure;
use crate::archive::{self, Limits};
use crate::config::Config;
use anyhow::anyhow;

pub fn run(config: &Config, before: Option<&str>) -> Result<(), Failure> {
    let limits = match before {
        Some(date) => Limits {
            recorded_before: Some(local_midnight(config, date)?),
            max_journal_size: None,
        },
        None => Limits::from_config(&config.retention, jiff::Timestamp::now()),
    };
    if limits.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "archive: nothing says what to archive: give --before DATE, or set [retention] keep_events_for or \
             max_journal_size in config.toml"
        )));
    }
    let paths = crate::db::StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    crate::db::upgrade_journal(&paths.journal())?;
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("archiving [{bar:40}] {pos}/{len} events")
            .map_err(|e| anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    // With no server writing, an older journal may be switched to incremental vacuum (one full VACUUM).
    let shrinking = if super::own_core::server_holds(&paths)? {
        archive::Shrink::Incremental
    } else {
        archive::Shrink::SwitchIfNeeded
    };
    let archived = archive::run(config, limits, shrinking, &mut |done, total| {
        bar.set_length(total.max(1));
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    for file in &archived.files {
        println!(
            "wrote {} ({} events, positions {}-{})",
            config.retention.archive_dir.join(&file.file).display(),
            file.events,
            file.first_position,
            file.last_position
        );
    }
    if archived.events == 0 && archived.up_to == 0 {
        println!("nothing to archive: the journal holds no event that old");
    } else if archived.events == 0 {
        println!(
            "nothing to archive: what it asks for is archived already (every event up to position {})",
            archived.up_to
        );
    } else {
        println!(
            "archived {} events (every event up to position {}); journal.db {} -> {} bytes",
            archived.events, archived.up_to, archived.bytes_before, archived.bytes_after
        );
    }
    if let Some(follower) = archived.held_back_by {
        println!("held back by {follower}, which has not applied the later events yet; they stay until it has");
    }
    Ok(())
}

pub fn verify(config: &Config) -> Result<(), Failure> {
    let dir = &config.retention.archive_dir;
    let verified = archive::files::verify(dir)?;
    for problem in &verified.problems {
        eprintln!("gatehouse: {}: {problem}", dir.display());
    }
    if !verified.problems.is_empty() {
        return Err(Failure::Runtime(anyhow!(
            "archive --verify: {} problem(s) in {} file(s)",
            verified.problems.len(),
            verified.files
        )));
    }
    println!(
        "{} archive file(s), {} events: every file matches the manifest and its chain",
        verified.files, verified.events
    );
    Ok(())
}

/// The first instant of `date` (YYYY-MM-DD) in the site's time zone.
fn local_midnight(config: &Config, date: &str) -> Result<jiff::Timestamp, Failure> {
    let day: jiff::civil::Date = date
        .parse()
        .map_err(|e| Failure::Usage(anyhow!("--before {date:?}: expected a date like 2026-01-01 ({e})")))?;
    crate::web::day_start(day, &config.site.timezone)
        .map(|start| start.timestamp())
        .ok_or_else(|| Failure::Usage(anyhow!("--before {date}: no such day in {}", config.site.timezone_name)))
}
