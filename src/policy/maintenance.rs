//! The maintenance policy: a reported fault opens a corrective work order (or reopens the one resolved for it
//! less than a day ago), a fault the device reports cleared is noted on its order, a maintenance schedule's run
//! opens a preventive order per device (or notes the skipped run on the one still to do), and a turnstile's service
//! meter opens a preventive order after `passages_between_service` passages. It hands out the work order numbers: one
//! counter in its memory, saved with its checkpoint, so an event re-delivered after a crash is decided again from
//! the same memory to the same number (and that order's causation makes the second attempt a no-op). On a
//! journal with history (an upgrade) it acts only on what was recorded from a day before it first ran.

use super::{Order, Policy};
use crate::domain::schedule::{ScheduleEvent, ScheduleRunDue};
use crate::domain::work_order::*;
use crate::domain::{DeviceEvent, DeviceId, FaultCode};
use crate::journal::StoredEvent;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A fault reported again this soon after its order was resolved reopens that order.
pub const REOPEN_WITHIN: SignedDuration = SignedDuration::from_hours(24);
/// When the policy first runs on a journal with history (an upgrade), device events recorded more than this
/// before its first event are folded into its memory but not acted on: a year of faults long cleared must not
/// become a year of open work orders. Passages still count on the service meter (as on the device page), so a
/// turnstile already past its threshold gets its one preventive order at its first new passage.
pub const HISTORY_ACTED_ON: SignedDuration = SignedDuration::from_hours(24);
const MEMORY_SCHEMA: u32 = 1;

pub struct MaintenancePolicy {
    /// `passages_between_service` per turnstile, from `config.toml`.
    service_every: HashMap<DeviceId, u64>,
    /// The site's time zone, for the run times it writes on orders.
    tz: jiff::tz::TimeZone,
    memory: Memory,
}

/// What the policy has folded from the journal so far.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Memory {
    /// Device events recorded before this instant (µs) are history: folded, not acted on. Set from the first
    /// event the policy ever sees.
    acts_from: Option<i64>,
    /// The last work order number handed out (or seen in the journal).
    last_number: u64,
    /// Each device's name and zone, from its commissioning and later changes.
    devices: BTreeMap<String, (String, String)>,
    /// Orders neither resolved nor cancelled.
    active: BTreeMap<u64, Active>,
    /// The latest resolved corrective order per device and fault code, and when it was resolved (µs).
    resolved_faults: BTreeMap<(String, String), (u64, i64)>,
    /// Passages since each metered turnstile's last service, and whether its meter has opened an order since.
    meters: BTreeMap<String, Meter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Active {
    device: String,
    kind: WorkOrderKind,
    cause: Cause,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Meter {
    passages: u64,
    ordered: bool,
}

impl MaintenancePolicy {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            service_every: config
                .turnstiles
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.passages_between_service?)))
                .collect(),
            tz: config.site.timezone.clone(),
            memory: Memory::default(),
        }
    }

    fn active_for(&self, device: &str, cause: &Cause) -> Option<u64> {
        self.memory
            .active
            .iter()
            .find(|(_, a)| a.device == device && &a.cause == cause)
            .map(|(n, _)| *n)
    }

    fn open(
        &mut self,
        device: &str,
        (kind, cause): (WorkOrderKind, Cause),
        title: String,
        due_at: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Order, String> {
        let id = DeviceId::parse(device).map_err(|e| e.to_string())?;
        self.memory.last_number += 1;
        let number = WorkOrderNumber::new(self.memory.last_number);
        let zone = self
            .memory
            .devices
            .get(device)
            .map(|(_, zone)| zone.clone())
            .unwrap_or_default();
        self.memory.active.insert(
            number.get(),
            Active {
                device: device.to_owned(),
                kind,
                cause: cause.clone(),
            },
        );
        Ok(Order::to::<WorkOrder>(
            number.to_string(),
            WorkOrderCommand::Open(WorkOrderOpened {
                device: id,
                zone,
                kind,
                cause,
                title,
                due_at,
                at,
            }),
        ))
    }

    fn device_name(&self, device: &str) -> String {
        match self.memory.devices.get(device) {
            Some((name, _)) if !name.is_empty() => format!("{device} ({name})"),
            _ => device.to_owned(),
        }
    }

    fn on_fault(
        &mut self,
        device: &str,
        code: &FaultCode,
        detail: &str,
        event: &StoredEvent,
    ) -> Result<Vec<Order>, String> {
        let cause = Cause::Fault { code: code.clone() };
        if self.active_for(device, &cause).is_some() {
            return Ok(vec![]);
        }
        let key = (device.to_owned(), code.as_str().to_owned());
        if let Some(&(number, resolved_at)) = self.memory.resolved_faults.get(&key) {
            let since = event.occurred_at.as_microsecond() - resolved_at;
            if (0..=REOPEN_WITHIN.as_micros() as i64).contains(&since) {
                self.memory.resolved_faults.remove(&key);
                self.memory.active.insert(
                    number,
                    Active {
                        device: device.to_owned(),
                        kind: WorkOrderKind::Corrective,
                        cause,
                    },
                );
                let reason = Note::parse(
                    &format!(
                        "{code} reported again at {} (less than 24 h after it was resolved)",
                        event.occurred_at
                    ),
                    "the reason",
                )?;
                return Ok(vec![Order::to::<WorkOrder>(
                    WorkOrderNumber::new(number).to_string(),
                    WorkOrderCommand::Reopen {
                        reason,
                        at: event.recorded_at,
                    },
                )]);
            }
        }
        let mut title = format!("{code} on {}", self.device_name(device));
        if !detail.trim().is_empty() {
            title.push_str(": ");
            title.push_str(detail.trim());
        }
        let title: String = title.chars().take(200).collect();
        Ok(vec![self.open(
            device,
            (WorkOrderKind::Corrective, cause),
            title,
            None,
            event.recorded_at,
        )?])
    }

    fn on_fault_cleared(&mut self, device: &str, code: &FaultCode, event: &StoredEvent) -> Result<Vec<Order>, String> {
        let Some(number) = self.active_for(device, &Cause::Fault { code: code.clone() }) else {
            return Ok(vec![]);
        };
        let text = Note::parse(
            &format!("device reports {code} cleared at {}", event.occurred_at),
            "the note",
        )?;
        Ok(vec![Order::to::<WorkOrder>(
            WorkOrderNumber::new(number).to_string(),
            WorkOrderCommand::Comment {
                text,
                at: event.recorded_at,
            },
        )])
    }

    fn on_passage(&mut self, device: &str, event: &StoredEvent, history: bool) -> Result<Vec<Order>, String> {
        let Some(&every) = self.service_every.get(device) else {
            return Ok(vec![]);
        };
        let meter = self.memory.meters.entry(device.to_owned()).or_default();
        meter.passages += 1;
        if history || meter.passages < every || meter.ordered {
            return Ok(vec![]);
        }
        meter.ordered = true;
        let title = format!("Service {} after {every} passages", self.device_name(device));
        Ok(vec![self.open(
            device,
            (WorkOrderKind::Preventive, Cause::ServiceMeter { passages: every }),
            title,
            None,
            event.recorded_at,
        )?])
    }

    /// A schedule's run: one preventive order per device it names, due at the next run; a device whose order
    /// from this schedule is still to do gets a note on it instead, so orders do not pile up.
    fn on_run(&mut self, schedule: &str, run: &ScheduleRunDue, event: &StoredEvent) -> Result<Vec<Order>, String> {
        let cause = Cause::Schedule {
            schedule: schedule.to_owned(),
        };
        let run_at = run.run_at.to_zoned_datetime(self.tz.clone()).strftime("%Y-%m-%d %H:%M");
        let mut orders = Vec::with_capacity(run.devices.len());
        for device in &run.devices {
            let device = device.as_str();
            if let Some(number) = self.active_for(device, &cause) {
                let text = Note::parse(
                    &format!("the {run_at} run of schedule {schedule} was skipped: this order is still to do"),
                    "the note",
                )?;
                orders.push(Order::to::<WorkOrder>(
                    WorkOrderNumber::new(number).to_string(),
                    WorkOrderCommand::Comment {
                        text,
                        at: event.recorded_at,
                    },
                ));
                continue;
            }
            let title: String = format!("{}: {}", run.task, self.device_name(device))
                .chars()
                .take(200)
                .collect();
            orders.push(self.open(
                device,
                (WorkOrderKind::Preventive, cause.clone()),
                title,
                run.due_at,
                event.recorded_at,
            )?);
        }
        Ok(orders)
    }

    /// An order was closed (resolved or cancelled): it no longer blocks new ones for its cause, and a resolved
    /// preventive order is the device's service (its meter starts again).
    fn on_closed(&mut self, number: WorkOrderNumber, resolved_at: Option<Timestamp>) {
        let Some(active) = self.memory.active.remove(&number.get()) else {
            return;
        };
        match (&active.cause, resolved_at) {
            (Cause::Fault { code }, Some(at)) => {
                self.memory.resolved_faults.insert(
                    (active.device.clone(), code.as_str().to_owned()),
                    (number.get(), at.as_microsecond()),
                );
            }
            (Cause::ServiceMeter { .. }, None) => {
                // A cancelled meter order: the count starts again rather than opening another at once.
                self.memory.meters.insert(active.device.clone(), Meter::default());
            }
            _ => {}
        }
        if active.kind == WorkOrderKind::Preventive && resolved_at.is_some() {
            self.memory.meters.insert(active.device, Meter::default());
        }
    }
}

impl Policy for MaintenancePolicy {
    fn name(&self) -> &'static str {
        "maintenance"
    }

    fn react(&mut self, event: &StoredEvent) -> Result<Vec<Order>, String> {
        if let Some((device, details, _)) = super::carried_device(event) {
            self.memory
                .devices
                .insert(device.to_owned(), (details.name, details.zone));
            return Ok(vec![]);
        }
        let acts_from = *self
            .memory
            .acts_from
            .get_or_insert_with(|| (Timestamp::now() - HISTORY_ACTED_ON).as_microsecond());
        let history = event.recorded_at.as_microsecond() < acts_from;
        if let Some((device, device_event)) = event.device() {
            return match device_event {
                DeviceEvent::Commissioned(e) => {
                    self.memory
                        .devices
                        .insert(device.to_owned(), (e.details.name.clone(), e.details.zone.clone()));
                    Ok(vec![])
                }
                DeviceEvent::DetailsChanged(e) => {
                    self.memory
                        .devices
                        .insert(device.to_owned(), (e.details.name.clone(), e.details.zone.clone()));
                    Ok(vec![])
                }
                // The meter counts history too (as the device page's meter does); a service it makes due is
                // ordered at the first passage the policy acts on.
                DeviceEvent::PassageRecorded(_) => self.on_passage(device, event, history),
                _ if history => Ok(vec![]),
                DeviceEvent::FaultReported(e) => self.on_fault(device, &e.code, &e.detail, event),
                DeviceEvent::FaultCleared(e) => self.on_fault_cleared(device, &e.code, event),
                _ => Ok(vec![]),
            };
        }
        if let crate::codec::AnyEvent::Schedule(ScheduleEvent::RunDue(run)) = &event.event {
            return self.on_run(event.stream_id.id(), run, event);
        }
        if let Some((number, order_event)) = event.work_order() {
            match order_event {
                // Orders it opened are in its memory already; this also covers a memory folded again from the
                // journal, so a number is never handed out twice.
                WorkOrderEvent::Opened(e) => {
                    self.memory.last_number = self.memory.last_number.max(number.get());
                    self.memory.active.entry(number.get()).or_insert_with(|| Active {
                        device: e.device.as_str().to_owned(),
                        kind: e.kind,
                        cause: e.cause.clone(),
                    });
                }
                WorkOrderEvent::Resolved(e) => self.on_closed(number, Some(e.at)),
                WorkOrderEvent::Cancelled(_) => self.on_closed(number, None),
                // Reopened by this policy, the memory has it active already; folded again from the journal, the
                // order moves from the resolved faults back to the active ones here.
                WorkOrderEvent::Reopened(_) => {
                    let resolved = self
                        .memory
                        .resolved_faults
                        .iter()
                        .find(|(_, (n, _))| *n == number.get());
                    if let Some(((device, code), _)) = resolved.map(|(key, value)| (key.clone(), *value)) {
                        self.memory.resolved_faults.remove(&(device.clone(), code.clone()));
                        let code = FaultCode::parse(&code)?;
                        self.memory.active.insert(
                            number.get(),
                            Active {
                                device,
                                kind: WorkOrderKind::Corrective,
                                cause: Cause::Fault { code },
                            },
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(vec![])
    }

    fn remember(&self) -> Option<Vec<u8>> {
        Some(super::encode_memory(MEMORY_SCHEMA, &self.memory))
    }

    fn recall(&mut self, memory: &[u8]) -> Result<(), String> {
        self.memory = super::decode_memory(MEMORY_SCHEMA, memory)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::AnyEvent;
    use crate::domain::{DeviceDetails, DeviceKind, FaultReported, StreamName};
    use crate::journal::Actor;

    fn stored(position: u64, stream: &str, recorded_at: Timestamp, event: AnyEvent) -> StoredEvent {
        StoredEvent {
            position,
            stream_id: StreamName::parse(stream).unwrap(),
            version: 1,
            event_type: event.event_type(),
            schema: 1,
            occurred_at: recorded_at,
            recorded_at,
            causation: None,
            actor: Some(Actor::gateway("test")),
            event,
        }
    }

    fn fault(position: u64, code: &str, recorded_at: Timestamp) -> StoredEvent {
        let event = DeviceEvent::FaultReported(FaultReported {
            code: FaultCode::parse(code).unwrap(),
            detail: String::new(),
            at: recorded_at,
            seq: None,
        });
        stored(position, "T1", recorded_at, AnyEvent::Device(event))
    }

    fn policy() -> MaintenancePolicy {
        MaintenancePolicy {
            service_every: HashMap::new(),
            tz: jiff::tz::TimeZone::UTC,
            memory: Memory::default(),
        }
    }

    #[test]
    fn history_before_the_policy_first_ran_is_folded_not_acted_on() {
        let mut policy = policy();
        let now = Timestamp::now();
        let long_ago = now - SignedDuration::from_hours(24 * 30);
        let commissioned = DeviceEvent::Commissioned(crate::domain::Commissioned {
            kind: DeviceKind::Turnstile,
            details: DeviceDetails {
                name: "Hall A north".into(),
                zone: "Hall A".into(),
                ..DeviceDetails::default()
            },
            watches: vec![],
            at: long_ago,
        });
        assert!(
            policy
                .react(&stored(1, "T1", long_ago, AnyEvent::Device(commissioned)))
                .unwrap()
                .is_empty()
        );
        assert!(
            policy.react(&fault(2, "JAM", long_ago)).unwrap().is_empty(),
            "a month-old fault opens nothing"
        );
        let orders = policy.react(&fault(3, "SENSOR", now)).unwrap();
        assert_eq!(orders.len(), 1);
        assert!(
            orders[0].describe.contains("work_order:WO-000001"),
            "{}",
            orders[0].describe
        );
        assert!(
            orders[0].describe.contains("Hall A"),
            "the zone was folded from history: {}",
            orders[0].describe
        );
    }

    #[test]
    fn history_counts_on_the_service_meter_and_a_due_service_is_ordered_at_the_first_new_passage() {
        let mut policy = policy();
        policy.service_every.insert(DeviceId::parse("T1").unwrap(), 2);
        let now = Timestamp::now();
        let passage = |position, at| {
            let event = DeviceEvent::PassageRecorded(crate::domain::PassageRecorded {
                direction: crate::domain::Direction::In,
                at,
                during_fault: false,
                during_lockout: false,
                seq: None,
            });
            stored(position, "T1", at, AnyEvent::Device(event))
        };
        let long_ago = now - SignedDuration::from_hours(24 * 30);
        for position in 1..=3 {
            assert!(policy.react(&passage(position, long_ago)).unwrap().is_empty());
        }
        let orders = policy.react(&passage(4, now)).unwrap();
        assert_eq!(orders.len(), 1, "one preventive order, at the first new passage");
        assert!(orders[0].describe.contains("ServiceMeter"), "{}", orders[0].describe);
        assert!(policy.react(&passage(5, now)).unwrap().is_empty(), "and only one");
    }

    #[test]
    fn numbers_continue_after_the_highest_order_the_journal_holds() {
        let mut policy = policy();
        let now = Timestamp::now();
        let opened = WorkOrderEvent::Opened(WorkOrderOpened {
            device: DeviceId::parse("T1").unwrap(),
            zone: "Hall A".into(),
            kind: WorkOrderKind::Corrective,
            cause: Cause::Fault {
                code: FaultCode::parse("JAM").unwrap(),
            },
            title: "JAM on T1".into(),
            due_at: None,
            at: now,
        });
        policy
            .react(&stored(1, "work_order:WO-000007", now, AnyEvent::WorkOrder(opened)))
            .unwrap();
        assert!(
            policy.react(&fault(2, "JAM", now)).unwrap().is_empty(),
            "WO-000007 is still to do for JAM"
        );
        let orders = policy.react(&fault(3, "SENSOR", now)).unwrap();
        assert!(
            orders[0].describe.contains("work_order:WO-000008"),
            "{}",
            orders[0].describe
        );
        // The memory survives a round trip through its saved form.
        let mut again = self::policy();
        again.recall(&policy.remember().unwrap()).unwrap();
        assert_eq!(again.memory, policy.memory);
        assert!(again.recall(b"not a memory").is_err());
    }
}
