//! Runs each policy as a task on the actix runtime: read a batch after the checkpoint and let the policy decide
//! every event of it (both on the policy's own thread), carry out the orders (in decision order per aggregate
//! instance, concurrently across instances) until each is durable, then move the checkpoint with the policy's
//! memory. Woken by the writer's commit notices, like the projectors; catches up after a restart.

use super::{OrderError, Policy, follower_name};
use crate::actors::{Meta, Registry};
use crate::config::OnError;
use crate::journal::{Actor, JournalReader, Position, StoredEvent, UnreadableEvent};
use crate::projection::parked::{self, Unhandled};
use crate::projection::runner::ProjectorHandle;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Events read per batch: the checkpoint (and memory) moves once per batch, after every order of it is durable,
/// and a batch's orders share group commits (200 per batch: 13 s to act on a fault-heavy 200k-event burst; 1,000:
/// 4.5 s). A failed order retries the whole batch, whose orders that landed are then dropped by causation.
const BATCH: usize = 1000;
/// How soon a policy whose order could not be made durable tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Starts every policy; the handles join the projectors' on the admin page, `/healthz` and `/metrics`, and in
/// read-your-writes waits. Must run inside an actix system.
pub fn start_policies(
    policies: Vec<Box<dyn Policy>>,
    registry: Registry,
    journal_path: &Path,
    views_path: &Path,
    committed: watch::Receiver<Position>,
    on_error: OnError,
    clock: crate::clock::Clock,
) -> anyhow::Result<Vec<ProjectorHandle>> {
    let mut handles = Vec::new();
    for policy in policies {
        let name: &'static str = Box::leak(follower_name(policy.name()).into_boxed_str());
        let mut views = crate::db::open(views_path, crate::config::Synchronous::Normal)?;
        let mut policy = policy;
        let start = restore_memory(&mut views, name, policy.as_mut())?;
        let (position_tx, position) = watch::channel(start);
        let (ticked_tx, ticked) = watch::channel(jiff::Timestamp::UNIX_EPOCH);
        let handle = ProjectorHandle {
            name,
            position,
            last_error: Arc::new(Mutex::new(None)),
            ticked: (clock.is_virtual() && policy.ticks()).then_some(ticked),
        };
        let runner = Runner {
            policy: Arc::new(Mutex::new(policy)),
            worker: Worker::start(name)?,
            name,
            registry: registry.clone(),
            journal_path: journal_path.to_owned(),
            views_path: views_path.to_owned(),
            position: position_tx,
            last_error: handle.last_error.clone(),
            on_error,
            connections: None,
            clock: clock.clone(),
            ticked: ticked_tx,
        };
        actix::spawn(runner.run(committed.clone()));
        handles.push(handle);
    }
    Ok(handles)
}

/// Gives a policy the memory saved with its checkpoint; returns the position it continues after. A policy that
/// keeps a memory but has none that it can read (an older program wrote it, or it was never written) starts over
/// from the first event.
fn restore_memory(views: &mut rusqlite::Connection, name: &str, policy: &mut dyn Policy) -> anyhow::Result<Position> {
    let checkpoint = crate::projection::checkpoint(views, name)?;
    if policy.remember().is_none() {
        return Ok(checkpoint);
    }
    let saved = read_memory(views, name)?;
    let usable = match &saved {
        Some(memory) => match policy.recall(memory) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(policy = name, %error, "cannot read the policy's memory; starting it over from the first event");
                false
            }
        },
        None => checkpoint == 0,
    };
    if usable {
        return Ok(checkpoint);
    }
    let tx = views.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM policy_memory WHERE follower = ?1", [name])?;
    crate::projection::set_checkpoint(&tx, name, 0)?;
    tx.commit()?;
    Ok(0)
}

fn read_memory(views: &rusqlite::Connection, name: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    use rusqlite::OptionalExtension;
    views
        .query_row("SELECT memory FROM policy_memory WHERE follower = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
}

fn save_memory(views: &rusqlite::Connection, name: &str, memory: &[u8]) -> rusqlite::Result<()> {
    views.execute(
        "INSERT INTO policy_memory (follower, memory) VALUES (?1, ?2)
         ON CONFLICT (follower) DO UPDATE SET memory = excluded.memory",
        rusqlite::params![name, memory],
    )?;
    Ok(())
}

struct Runner {
    /// Decides on the worker's thread (`one_batch`) and answers about time and memory here.
    policy: Arc<Mutex<Box<dyn Policy>>>,
    worker: Worker,
    name: &'static str,
    registry: Registry,
    journal_path: PathBuf,
    views_path: PathBuf,
    position: watch::Sender<Position>,
    last_error: Arc<Mutex<Option<String>>>,
    on_error: OnError,
    /// Kept between batches (a policy reads after every commit); dropped after a failure, opened again next time.
    connections: Option<Connections>,
    /// What "now" is when time passing is asked about.
    clock: crate::clock::Clock,
    /// The clock time the policy last acted on (what a virtual clock's mover waits for).
    ticked: watch::Sender<jiff::Timestamp>,
}

/// The runner's own connections to the journal and to views.db (checkpoint and parked events).
struct Connections {
    journal: JournalReader,
    views: rusqlite::Connection,
}

/// A policy's own thread, where its SQLite work runs and where it decides each batch. Reading and deciding every
/// event on the actix thread took it from ingestion (over an external-broker bench run, about a quarter of that
/// thread's allocations were the policies'); like the projectors' threads, it yields the CPU to ingestion when the
/// CPU is short.
struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Worker {
    fn start(name: &str) -> anyhow::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("policy-{}", name.trim_start_matches("policy:")))
            .spawn(move || {
                crate::projection::runner::yield_to_ingestion();
                // Ends when the runner (the only sender) is dropped.
                for job in queue {
                    // A job that panics drops its answer (the runner reports the failure and retries); the thread
                    // goes on with the next one.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the worker's thread and waits for its answer.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.jobs
            .send(job)
            .map_err(|_| "the policy's thread has stopped".to_string())?;
        answered
            .await
            .map_err(|_| "the policy's thread failed in the middle of its work".to_string())
    }
}

/// What a policy made of one batch, decided on its thread.
struct Decided {
    /// The checkpoint the batch starts after.
    from: Position,
    /// Rows read.
    read: usize,
    /// The last position decided (or parked).
    last: Position,
    orders: Vec<(String, super::Order)>,
    parked: Vec<Unhandled>,
    /// With `on_error = stop`: the event it stopped in front of (nothing after it was decided).
    stopped: Option<Unhandled>,
}

/// Lets the policy decide each row of a batch, in order.
fn decide(
    policy: &mut dyn Policy,
    name: &'static str,
    on_error: OnError,
    from: Position,
    rows: Vec<Result<StoredEvent, UnreadableEvent>>,
) -> Decided {
    let mut decided = Decided {
        from,
        read: rows.len(),
        last: from,
        orders: Vec::new(),
        parked: Vec::new(),
        stopped: None,
    };
    for row in rows {
        let outcome = match row {
            Ok(event) => match policy.react(&event) {
                Ok(orders) => {
                    decided.orders.extend(with_causations(name, event.position, orders));
                    Ok(event.position)
                }
                Err(error) => Err(Unhandled::of(&event, error)),
            },
            Err(unreadable) => Err(Unhandled::unreadable(&unreadable)),
        };
        match outcome {
            Ok(position) => decided.last = position,
            Err(unhandled) if on_error == OnError::Stop => {
                // Keep what came before it; stop in front of it, deciding nothing after it.
                decided.stopped = Some(unhandled);
                break;
            }
            Err(unhandled) => {
                decided.last = unhandled.position;
                decided.parked.push(unhandled);
            }
        }
    }
    decided
}

/// Each order with the causation it is carried out under: `policy:NAME:POSITION`, `/N` for the N-th of several.
fn with_causations(name: &str, position: Position, orders: Vec<super::Order>) -> Vec<(String, super::Order)> {
    let several = orders.len() > 1;
    orders
        .into_iter()
        .enumerate()
        .map(|(n, order)| {
            let causation = if several {
                format!("{name}:{position}/{n}")
            } else {
                format!("{name}:{position}")
            };
            (causation, order)
        })
        .collect()
}

impl Runner {
    async fn run(mut self, mut committed: watch::Receiver<Position>) {
        let ticks = self.policy().ticks();
        // On a virtual clock, time passes when the clock is moved, not every second.
        let mut moves = self.clock.watch();
        let on_wall_clock = moves.is_none();
        loop {
            let outcome = match self.one_batch().await {
                Ok(read) if read == BATCH => continue,
                // Caught up: what time passing calls for is decided on the memory of every event so far.
                Ok(_) if ticks => self.tick().await,
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            };
            let retry = match outcome {
                Ok(()) => {
                    self.set_error(None);
                    false
                }
                Err(error) => {
                    self.set_error(Some(error));
                    true
                }
            };
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                moved = async {
                    match &mut moves {
                        Some(moves) => moves.changed().await,
                        None => std::future::pending().await,
                    }
                }, if ticks && !on_wall_clock => if moved.is_err() { return },
                _ = tokio::time::sleep(RETRY_AFTER), if retry || (ticks && on_wall_clock) => {},
            }
        }
    }

    /// Shows a ticking policy the time and the last minute's dead letters, carries out what is due and saves the
    /// memory that says so (the checkpoint stays where it is).
    async fn tick(&mut self) -> Result<(), String> {
        let now = self.clock.now();
        let since = now - jiff::SignedDuration::from_secs(60);
        let recent_dead_letters = self
            .blocking(move |c| crate::dead_letters::recent_by_sender(c.journal.connection(), since))
            .await?;
        let due = self.policy().due(&super::Moment {
            now,
            recent_dead_letters,
        });
        if due.is_empty() {
            self.ticked.send_replace(now);
            return Ok(());
        }
        let orders = due
            .into_iter()
            .map(|due| (format!("{}:{}", self.name, due.key), due.order))
            .collect();
        self.carry_out(orders).await?;
        let (name, memory) = (self.name, self.policy().remember());
        self.blocking(move |c| {
            if let Some(memory) = &memory {
                let _writer = crate::db::views_writer(&c.views);
                save_memory(&c.views, name, memory)?;
            }
            Ok(())
        })
        .await?;
        self.ticked.send_replace(now);
        Ok(())
    }

    /// The policy, between the batches its thread decides.
    fn policy(&self) -> std::sync::MutexGuard<'_, Box<dyn Policy>> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_error(&self, error: Option<String>) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(error) = &error
            && last.as_deref() != Some(error.as_str())
        {
            tracing::error!(policy = self.name, %error, "policy is stuck; retrying");
        }
        *last = error;
    }

    /// Runs `work` on the policy's thread with the runner's connections, opening them when there are none.
    async fn blocking<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Connections) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let (journal, views) = (self.journal_path.clone(), self.views_path.clone());
        let kept = self.connections.take();
        let (connections, result) = self
            .worker
            .run(move || {
                let mut connections = match kept {
                    Some(connections) => connections,
                    None => match JournalReader::open(&journal)
                        .and_then(|journal| Ok((journal, crate::db::open(&views, crate::config::Synchronous::Normal)?)))
                    {
                        Ok((journal, views)) => Connections { journal, views },
                        Err(error) => return (None, Err(error)),
                    },
                };
                let result = work(&mut connections);
                // After a failure the connections are not trusted again.
                (result.is_ok().then_some(connections), result)
            })
            .await?;
        self.connections = connections;
        result.map_err(|e| format!("{e:#}"))
    }

    /// Reads, acts on and checkpoints one batch. Returns how many rows it read.
    ///
    /// The policy decides the whole batch first (from its memory, never from what its orders did), on its thread;
    /// the orders are then carried out together: one after the other for each aggregate instance, concurrently
    /// across instances, so their appends share group commits instead of waiting a commit each.
    async fn one_batch(&mut self) -> Result<usize, String> {
        let (name, on_error, policy) = (self.name, self.on_error, Arc::clone(&self.policy));
        let decided = self
            .blocking(move |c| {
                let from = crate::projection::checkpoint(&c.views, name)?;
                let rows = c.journal.events_after_lenient(from, BATCH)?;
                let mut policy = policy.lock().unwrap_or_else(|p| p.into_inner());
                Ok(decide(policy.as_mut(), name, on_error, from, rows))
            })
            .await?;
        self.carry_out(decided.orders).await?;
        self.save(decided.from, decided.last, decided.parked).await?;
        match decided.stopped {
            None => Ok(decided.read),
            Some(unhandled) => Err(format!(
                "event at position {} cannot be handled: {}",
                unhandled.position, unhandled.error
            )),
        }
    }

    /// Carries out a batch's orders until each is durable (or refused). When one cannot be made durable, the
    /// policy's memory goes back to its checkpoint and the whole batch is tried again (orders that landed are
    /// dropped then by their causations).
    async fn carry_out(&mut self, orders: Vec<(String, super::Order)>) -> Result<(), String> {
        if orders.is_empty() {
            return Ok(());
        }
        // Per target, in decision order.
        let mut by_target: Vec<(String, Vec<(String, super::Order)>)> = Vec::new();
        for (causation, order) in orders {
            match by_target.iter_mut().find(|(target, _)| *target == order.target) {
                Some((_, queue)) => queue.push((causation, order)),
                None => by_target.push((order.target.clone(), vec![(causation, order)])),
            }
        }
        let (name, registry) = (self.name, self.registry.clone());
        let queues = by_target.into_iter().map(|(_, queue)| {
            let registry = registry.clone();
            async move {
                for (causation, order) in queue {
                    let meta = Meta::by(Actor::from_stored(name.to_owned())).caused_by(causation.clone());
                    let describe = order.describe.clone();
                    match order.run(registry.clone(), meta).await {
                        Ok(outcome) => tracing::debug!(policy = name, %causation, ?outcome, %describe),
                        Err(OrderError::Refused(why)) => {
                            tracing::info!(policy = name, %causation, %describe, %why, "order refused")
                        }
                        Err(OrderError::Retry(why)) => return Err(format!("{describe}: {why}")),
                    }
                }
                Ok(())
            }
        });
        let failed = futures_util::future::join_all(queues)
            .await
            .into_iter()
            .find_map(Result::err);
        match failed {
            None => Ok(()),
            Some(error) => {
                self.recall_saved().await?;
                Err(error)
            }
        }
    }

    /// Puts the policy's memory back to what was saved with its checkpoint.
    async fn recall_saved(&mut self) -> Result<(), String> {
        if self.policy().remember().is_none() {
            return Ok(());
        }
        let name = self.name;
        let saved = self.blocking(move |c| Ok(read_memory(&c.views, name)?)).await?;
        match saved {
            Some(memory) => self.policy().recall(&memory),
            None => Err("its saved memory is gone; restart to start it over".into()),
        }
    }

    /// Parks what must be parked and moves the checkpoint, in one transaction.
    async fn save(&mut self, from: Position, last: Position, parked: Vec<Unhandled>) -> Result<(), String> {
        if last == from && parked.is_empty() {
            return Ok(());
        }
        let name = self.name;
        let memory = self.policy().remember();
        self.blocking(move |c| {
            let _writer = crate::db::views_writer(&c.views);
            let tx = c
                .views
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(memory) = &memory {
                save_memory(&tx, name, memory)?;
            }
            for event in &parked {
                tracing::error!(policy = name, position = event.position, error = %event.error, "event parked");
                parked::park(&tx, name, event)?;
            }
            crate::projection::set_checkpoint(&tx, name, last)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        self.position.send_replace(last);
        Ok(())
    }
}
