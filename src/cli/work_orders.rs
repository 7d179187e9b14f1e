//! `gatehouse work-orders` (the list, one order per line, id first, tab-separated) and `gatehouse work-order ID
//! STEP` (a step in its life, carried out like a lock-out: by the running server, or by a core of our own).

use super::Failure;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::journal::Actor;
use crate::requests::{OperatorCommand, WorkOrderStep};
use crate::work_orders::{self, Filter};
use anyhow::anyhow;
use std::io::Write;

/// Prints the orders the filter selects, newest first: id, device, kind, state, opened, due, assignee, title.
pub fn list(config: &Config, state: Option<&str>, device: Option<&str>) -> Result<(), Failure> {
    let filter = Filter {
        state: state
            .map(Filter::parse_state)
            .transpose()
            .map_err(|e| Failure::Usage(anyhow!("--state: {e}")))?,
        device: device.map(str::to_owned),
        ..Filter::default()
    };
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    let mut views = crate::db::open(&paths.views(), config.storage.synchronous)?;
    crate::db::migrate_views(&mut views)?;
    let rows = work_orders::list(&views, &filter).map_err(|e| anyhow!("views.db: {e}"))?;
    if rows.is_empty() {
        eprintln!("gatehouse: no work orders match (faults open them; see `gatehouse work-orders --help`)");
    }
    let tz = &config.site.timezone;
    let local = |micros: i64| crate::web::local_time(tz, micros);
    let mut out = std::io::stdout().lock();
    for row in rows {
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            row.id(),
            row.device,
            row.kind,
            row.state,
            local(row.opened_at),
            row.due_at.map_or_else(|| "-".to_owned(), local),
            row.assignee.as_deref().unwrap_or("-"),
            row.title.replace(['\t', '\n'], " "),
        );
        // A closed pipe (`| head`) ends the listing quietly.
        if out.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    Ok(())
}

/// Takes one step on an order and prints what it did.
pub fn step(config: Config, order: &str, step: &str, text: &str, by: &Actor) -> Result<(), Failure> {
    let step = WorkOrderStep::parse(step, text).map_err(|e| Failure::Usage(anyhow!("work-order {order}: {e}")))?;
    let command = OperatorCommand::work_order(order, step).map_err(|e| Failure::Usage(anyhow!("work-order: {e}")))?;
    super::operator::run(config, &command, by)
}
