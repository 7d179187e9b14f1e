//! Policies: followers of the journal that turn events into commands (a fault opens a work order, a watched face
//! raises an alarm). Each reads events after its checkpoint, asks its [`Policy`] what the event calls for, and
//! executes those orders on the aggregates with causation `policy:NAME:POSITION` (plus `/N` for the N-th order of
//! one event), so an event re-delivered after a crash (the checkpoint moves only after the orders are durable)
//! acts once: the journal drops a command whose causation its stream already holds, including a command that
//! creates an instance, whose id the policy derives from the causation rather than from a fresh number.
//!
//! An event a policy cannot read is parked like a projector's; a refused command is the aggregate's answer and
//! is logged; a journal failure stops the batch and retries it.

mod alarms;
mod identification;
mod maintenance;
mod occupancy;
mod runner;

pub use alarms::AlarmPolicy;
pub use identification::IdentificationPolicy;
pub use maintenance::MaintenancePolicy;
pub use occupancy::OccupancyPolicy;

pub use runner::start_policies;

use crate::actors::{CommandError, CommandOutcome, Hosted, Meta, Registry};
use crate::domain::{DeviceCommand, StreamName};
use crate::journal::StoredEvent;
use std::future::Future;
use std::pin::Pin;

/// What a device's carried-forward state says of it: its details and a camera's watches. A policy whose memory
/// starts over after archival (a lost views.db) meets this where the device's commissioning used to be. `None`
/// for any other event, or for a state of a shape this program does not read.
pub(crate) fn carried_device(
    event: &StoredEvent,
) -> Option<(&str, crate::domain::DeviceDetails, Vec<crate::domain::DeviceId>)> {
    let crate::codec::AnyEvent::Carried(carried) = &event.event else {
        return None;
    };
    if event.stream_id.kind() != crate::domain::DEVICE_KIND {
        return None;
    }
    let device = event.stream_id.id();
    match carried.of.as_str() {
        "turnstile" => carried
            .state_of::<crate::domain::Turnstile>()
            .ok()
            .map(|state| (device, state.common.details, Vec::new())),
        "camera" => carried
            .state_of::<crate::domain::Camera>()
            .ok()
            .map(|state| (device, state.common.details, state.watches)),
        _ => None,
    }
}

/// The name under which a policy's checkpoint and parked events are kept (`policy:NAME`).
pub fn follower_name(policy: &str) -> String {
    format!("policy:{policy}")
}

/// A rule that turns events into commands. Pure: it looks only at the event (and what it has folded from earlier
/// events in its own fields); the runner executes what it returns.
pub trait Policy: Send + 'static {
    /// Short, stable: it is part of every causation the policy writes.
    fn name(&self) -> &'static str;
    /// The commands `event` calls for, usually none. `Err` parks the event (a policy bug or a value it cannot
    /// use); the policy goes on with the next one.
    fn react(&mut self, event: &StoredEvent) -> Result<Vec<Order>, String>;

    /// What it has folded from the events before its checkpoint (open orders, counters), saved with the
    /// checkpoint in one transaction so a restart continues with the memory that matches its position. `None`
    /// for a policy that keeps nothing.
    fn remember(&self) -> Option<Vec<u8>> {
        None
    }

    /// Takes back what [`Policy::remember`] saved. `Err` (a memory this program cannot read) makes the runner
    /// start the policy over from the first event: its orders carry their causations, so nothing acts twice,
    /// and its memory (counters included) is folded again from the same events to the same values.
    fn recall(&mut self, _memory: &[u8]) -> Result<(), String> {
        Ok(())
    }

    /// Whether the policy also acts on time passing ([`Policy::due`]); the runner then asks it every second
    /// once it has caught up with the journal.
    fn ticks(&self) -> bool {
        false
    }

    /// The commands that time passing calls for at `moment` (trouble that has now lasted too long). Each comes
    /// with a key naming the trouble, which makes its causation (`policy:NAME:KEY`), so a command carried out
    /// just before a crash is dropped when the restarted policy orders it again.
    fn due(&mut self, _moment: &Moment) -> Vec<Due> {
        Vec::new()
    }
}

/// What a ticking policy is shown: the time, and facts that are not events.
#[derive(Debug, Clone, Default)]
pub struct Moment {
    pub now: jiff::Timestamp,
    /// Dead letters kept in the minute before `now`, per sender.
    pub recent_dead_letters: Vec<SenderDeadLetters>,
}

/// Dead letters of one sender (`gateway:NAME`, `mqtt:CLIENT`) in the last minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderDeadLetters {
    pub sender: String,
    pub count: u64,
    /// The newest one's id: a later flood has a later one.
    pub last_id: i64,
}

/// A command time passing calls for, with the key its causation is made of.
pub struct Due {
    pub key: String,
    pub order: Order,
}

/// Why an order did not take effect.
#[derive(Debug)]
pub enum OrderError {
    /// The aggregate said no (its answer to this command; the policy goes on).
    Refused(String),
    /// Nothing durable happened (journal failure, actor down): retried with the same causation.
    Retry(String),
}

type OrderFuture = Pin<Box<dyn Future<Output = Result<CommandOutcome, OrderError>>>>;

/// One command a policy wants carried out, on one aggregate instance.
pub struct Order {
    /// What it is, for logs.
    pub describe: String,
    /// The stream it goes to: orders to one stream are carried out in the order decided.
    pub target: String,
    run: Box<dyn FnOnce(Registry, Meta) -> OrderFuture + Send>,
}

fn sort<R: std::fmt::Display>(result: Result<CommandOutcome, CommandError<R>>) -> Result<CommandOutcome, OrderError> {
    match result {
        Ok(outcome) => Ok(outcome),
        Err(CommandError::Rejected(rejection)) => Err(OrderError::Refused(rejection.to_string())),
        Err(error @ (CommandError::UnknownDevice(_) | CommandError::UnknownStream(_))) => {
            Err(OrderError::Refused(error.to_string()))
        }
        Err(error @ (CommandError::Journal(_) | CommandError::Unavailable)) => {
            Err(OrderError::Retry(error.to_string()))
        }
    }
}

impl Order {
    /// A command to instance `id` of kind `A`, started (recovered) on first use.
    pub fn to<A: Hosted>(id: impl Into<String>, command: A::Command) -> Order
    where
        A::Command: Send,
        A::Rejection: Send + std::fmt::Display,
    {
        let id = id.into();
        Order {
            describe: format!("{:?} to {}:{id}", command, A::KIND),
            target: StreamName::of(A::KIND, &id).map_or_else(|_| format!("{}:{id}", A::KIND), |s| s.to_string()),
            run: Box::new(move |registry, meta| {
                Box::pin(async move { sort(registry.execute_or_start::<A>(&id, command, meta).await) })
            }),
        }
    }

    /// A command to a device.
    pub fn device(id: impl Into<String>, command: DeviceCommand) -> Order {
        let id = id.into();
        Order {
            describe: format!("{command:?} to device {id}"),
            target: id.clone(),
            run: Box::new(move |registry, meta| {
                Box::pin(async move { sort(registry.execute_device(&id, command, meta).await) })
            }),
        }
    }

    pub(crate) fn run(self, registry: Registry, meta: Meta) -> OrderFuture {
        (self.run)(registry, meta)
    }
}

/// A policy's memory as saved with its checkpoint: its schema version, then the memory itself.
fn encode_memory<M: serde::Serialize>(schema: u32, memory: &M) -> Vec<u8> {
    crate::codec::encode_state(&(schema, memory)).1
}

/// Takes back what [`encode_memory`] saved; `Err` for a memory of another schema or one that does not decode.
fn decode_memory<M: serde::de::DeserializeOwned>(schema: u32, bytes: &[u8]) -> Result<M, String> {
    let (saved, memory): (u32, M) =
        crate::codec::decode_state(crate::codec::FORMAT_BINCODE2, bytes).map_err(|e| e.to_string())?;
    if saved != schema {
        return Err(format!("memory schema {saved}, this program keeps {schema}"));
    }
    Ok(memory)
}

/// Every policy this program runs, in the order they are listed to people.
pub fn all(config: &crate::config::Config) -> Vec<Box<dyn Policy>> {
    vec![
        Box::new(MaintenancePolicy::new(config)),
        Box::new(AlarmPolicy::new(config)),
        Box::new(IdentificationPolicy::new(config)),
        Box::new(OccupancyPolicy::new(config)),
    ]
}
