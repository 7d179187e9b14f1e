//! `gatehouse backup PATH`: a consistent copy of both databases while `serve` runs, through SQLite's online
//! backup API. Each file is copied in one step inside one read transaction (WAL: writers keep going), so the copy
//! is that instant's database: copied in steps, a busy journal would restart the copy at every commit and might
//! never finish. `views.db` is copied first, so every checkpoint in the copy is at or behind the copied journal's
//! head: restored, the projectors catch up from there and nothing is counted twice or missed.

use anyhow::Context;
use rusqlite::backup::{Backup, StepResult};
use std::path::Path;
use std::time::Duration;

/// Everything in one step: one read transaction, one consistent snapshot.
const ALL_PAGES: i32 = -1;

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
    for file in [crate::db::VIEWS_FILE, crate::db::JOURNAL_FILE] {
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
                    .step(ALL_PAGES)
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
