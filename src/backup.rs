//! `gatehouse backup PATH`: a consistent copy of both databases while `serve` runs, through SQLite's online
//! backup API (pages are copied in steps; writers keep going, and a step that saw a concurrent write restarts).

use anyhow::Context;
use rusqlite::backup::{Backup, StepResult};
use std::path::Path;
use std::time::Duration;

/// Pages copied per step: small enough that the writer is never held up for long.
const PAGES_PER_STEP: i32 = 1024;

/// Copies `journal.db` and `views.db` from `data_dir` into the directory `target` (created if missing; existing
/// copies are replaced). `progress(file, remaining, total)` hears how far each copy has got.
pub fn backup(
    data_dir: &Path,
    target: &Path,
    mut progress: impl FnMut(&str, i32, i32),
) -> anyhow::Result<Vec<(String, u64)>> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("{}: cannot create the backup directory", target.display()))?;
    let mut copied = Vec::new();
    for file in [crate::db::JOURNAL_FILE, crate::db::VIEWS_FILE] {
        let source_path = data_dir.join(file);
        let source = crate::db::open_readonly(&source_path)?;
        let destination_path = target.join(file);
        let partial = target.join(format!("{file}.partial"));
        let _ = std::fs::remove_file(&partial);
        let mut destination = rusqlite::Connection::open(&partial)
            .with_context(|| format!("{}: cannot create the backup file", partial.display()))?;
        {
            let backup = Backup::new(&source, &mut destination)?;
            loop {
                match backup
                    .step(PAGES_PER_STEP)
                    .with_context(|| format!("{}: backup failed", source_path.display()))?
                {
                    StepResult::Done => break,
                    StepResult::More => {}
                    // The writer holds a lock for a moment: wait and go on.
                    StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(10)),
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
                let p = backup.progress();
                progress(file, p.remaining, p.pagecount);
            }
        }
        drop(destination);
        // Only a complete copy takes the real name, so a crash mid-backup never leaves a truncated database.
        std::fs::rename(&partial, &destination_path).with_context(|| {
            format!(
                "{}: cannot move the finished backup into place",
                destination_path.display()
            )
        })?;
        let size = std::fs::metadata(&destination_path).map(|m| m.len()).unwrap_or(0);
        copied.push((file.to_owned(), size));
    }
    Ok(copied)
}
