//! The maintenance policy: a reported fault opens a corrective work order (or reopens the one resolved for it
//! less than a day ago), a fault the device reports cleared is noted on its order, and a turnstile's service meter
//! opens a preventive order after `passages_between_service` passages. It hands out the work order numbers: one
//! counter in its memory, saved with its checkpoint, so an event re-delivered after a crash is decided again from
//! the same memory to the same number (and that order's causation makes the second attempt a no-op).

use super::{Order, Policy};
use crate::codec;
use crate::domain::work_order::*;
use crate::domain::{DeviceEvent, DeviceId, FaultCode};
use crate::journal::StoredEvent;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A fault reported again this soon after its order was resolved reopens that order.
pub const REOPEN_WITHIN: SignedDuration = SignedDuration::from_hours(24);
const MEMORY_SCHEMA: u32 = 1;

pub struct MaintenancePolicy {
    /// `passages_between_service` per turnstile, from `config.toml`.
    service_every: HashMap<DeviceId, u64>,
    memory: Memory,
}

/// What the policy has folded from the journal so far.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Memory {
    /// The last work order number handed out.
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
        kind: WorkOrderKind,
        cause: Cause,
        title: String,
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
                due_at: None,
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
            WorkOrderKind::Corrective,
            cause,
            title,
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

    fn on_passage(&mut self, device: &str, event: &StoredEvent) -> Result<Vec<Order>, String> {
        let Some(&every) = self.service_every.get(device) else {
            return Ok(vec![]);
        };
        let meter = self.memory.meters.entry(device.to_owned()).or_default();
        meter.passages += 1;
        if meter.passages < every || meter.ordered {
            return Ok(vec![]);
        }
        meter.ordered = true;
        let title = format!("Service {} after {every} passages", self.device_name(device));
        Ok(vec![self.open(
            device,
            WorkOrderKind::Preventive,
            Cause::ServiceMeter { passages: every },
            title,
            event.recorded_at,
        )?])
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
                DeviceEvent::FaultReported(e) => self.on_fault(device, &e.code, &e.detail, event),
                DeviceEvent::FaultCleared(e) => self.on_fault_cleared(device, &e.code, event),
                DeviceEvent::PassageRecorded(_) => self.on_passage(device, event),
                _ => Ok(vec![]),
            };
        }
        if let Some((number, order_event)) = event.work_order() {
            match order_event {
                WorkOrderEvent::Resolved(e) => self.on_closed(number, Some(e.at)),
                WorkOrderEvent::Cancelled(_) => self.on_closed(number, None),
                _ => {}
            }
        }
        Ok(vec![])
    }

    fn remember(&self) -> Option<Vec<u8>> {
        Some(codec::encode_state(&(MEMORY_SCHEMA, &self.memory)).1)
    }

    fn recall(&mut self, memory: &[u8]) -> Result<(), String> {
        let (schema, memory): (u32, Memory) =
            codec::decode_state(codec::FORMAT_BINCODE2, memory).map_err(|e| e.to_string())?;
        if schema != MEMORY_SCHEMA {
            return Err(format!("memory schema {schema}, this program keeps {MEMORY_SCHEMA}"));
        }
        self.memory = memory;
        Ok(())
    }
}
