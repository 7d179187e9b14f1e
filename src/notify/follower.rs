//! The notifier's follower of the journal: reads alarm events after its checkpoint and turns each into the
//! notifications its channels should get (filters, cooldown, quiet hours), written to the outbox in the same
//! transaction as the checkpoint, so a crash neither loses nor doubles one. It also escalates: an alarm a channel
//! last told of as critical and unacknowledged is told again every `[alarms] repeat`; and it releases what a
//! flapping alarm's cooldown deferred, if the receiver still needs it.

use super::message::{self, Reason};
use super::outbox::{self, NewDelivery, millis};
use crate::config::ChannelConfig;
use crate::domain::Aggregate;
use crate::domain::alarm::{Alarm, AlarmState, Severity};
use crate::journal::{JournalReader, Position, StoredEvent};
use rusqlite::{Connection, TransactionBehavior};
use std::collections::HashMap;
use std::time::Duration;

/// Why a notification waits for the channel's quiet hours to end.
const QUIET_HOURS: &str = "quiet hours";
/// Alarm events read per transaction.
const BATCH: usize = 500;
/// A checkpoint with no notification to go with it is written at most this often: the follower skips every
/// other kind of event by its stream name, so reading a few seconds of them again after a crash costs nothing.
const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// What the follower knows between batches.
pub(super) struct Follower {
    pub channels: Vec<ChannelConfig>,
    pub site: String,
    pub timezone: jiff::tz::TimeZone,
    pub repeat: Duration,
    /// Alarms folded so far; one that is cleared and acknowledged is dropped (folded again if it comes back).
    pub alarms: HashMap<String, AlarmState>,
    /// How far it has read: ahead of the saved checkpoint by stretches that called for nothing.
    pub read_up_to: Position,
    pub last_checkpoint_write: std::time::Instant,
}

/// What a catch-up did.
pub(super) struct CaughtUp {
    pub position: Position,
    /// Notifications written (the channels' dispatchers are woken).
    pub written: usize,
    /// More alarm events wait after `position`.
    pub more: bool,
}

impl Follower {
    /// Where to start: the saved checkpoint, or (first start) the journal's head, saved at once so that alarms
    /// raised from now on are told even if the program dies before its first batch. Alarms from before the
    /// notifier existed are not sent out.
    pub fn start(journal: &mut Connection, reader: &JournalReader) -> anyhow::Result<Position> {
        if let Some(position) = outbox::checkpoint(journal)? {
            return Ok(position);
        }
        let head = reader.head()?;
        let tx = journal.transaction_with_behavior(TransactionBehavior::Immediate)?;
        outbox::set_checkpoint(&tx, head)?;
        tx.commit()?;
        Ok(head)
    }

    /// Reads the alarm events after the checkpoint up to `head` (one batch) and writes what they call for.
    pub fn catch_up(
        &mut self,
        journal: &mut Connection,
        reader: &JournalReader,
        head: Position,
    ) -> anyhow::Result<CaughtUp> {
        let from = self.read_up_to;
        if from >= head {
            return Ok(CaughtUp {
                position: from,
                written: 0,
                more: false,
            });
        }
        let rows = reader.kind_events_between(Alarm::KIND, from, head, BATCH)?;
        let more = rows.len() == BATCH;
        let up_to = match rows.last() {
            Some(Ok(last)) if more => last.position,
            Some(Err(last)) if more => last.position,
            _ => head,
        };
        let tx = journal.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut written = 0;
        for row in rows {
            match row {
                Ok(event) => match self.tell(&tx, reader, &event) {
                    Ok(told) => written += told,
                    Err(error) => {
                        // Nothing of the batch is kept: its alarms are folded again from the journal next time.
                        self.alarms.clear();
                        return Err(error);
                    }
                },
                // The alarms projector parks the same row where people see it; nothing can be told of it here.
                Err(unreadable) => tracing::error!(
                    position = unreadable.position,
                    stream = %unreadable.stream_id,
                    error = %unreadable.error,
                    "the notifier cannot read an alarm event; it is not notified"
                ),
            }
        }
        let idle_for = self.last_checkpoint_write.elapsed();
        if written > 0 || more || idle_for >= IDLE_CHECKPOINT_EVERY {
            let saved = outbox::set_checkpoint(&tx, up_to).and_then(|()| tx.commit());
            if let Err(error) = saved {
                self.alarms.clear();
                return Err(error.into());
            }
            self.last_checkpoint_write = std::time::Instant::now();
        }
        // A stretch that called for nothing is not saved every time: after a crash it is read again, to the same
        // nothing.
        self.read_up_to = up_to;
        Ok(CaughtUp {
            position: up_to,
            written,
            more,
        })
    }

    /// The notifications one alarm event calls for, written in `tx`; returns how many.
    fn tell(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        reader: &JournalReader,
        stored: &StoredEvent,
    ) -> anyhow::Result<usize> {
        let crate::codec::AnyEvent::Alarm(event) = &stored.event else {
            return Ok(0);
        };
        let number = stored.stream_id.id().to_owned();
        let state = match self.alarms.remove(&number) {
            Some(state) => state,
            None => fold_before(reader, stored)?,
        };
        let state = Alarm::evolve(state, event);
        let Some(alarm) = state.alarm.clone() else {
            return Ok(0);
        };
        if alarm.active || alarm.acknowledged.is_none() {
            self.alarms.insert(number.clone(), state);
        }
        let reason = Reason::of(event);
        let document = message::document(
            reason,
            stored.occurred_at,
            message::alarm_data(&self.site, &number, &alarm),
        );
        let created_at = millis(stored.recorded_at);
        let mut written = 0;
        for channel in &self.channels {
            if !channel
                .filter
                .accepts(alarm.severity, alarm.zone.as_deref(), alarm.alarm_type)
            {
                continue;
            }
            let cooldown = channel.cooldown.as_millis() as i64;
            let id = format!("msg_{}_{}", channel.name, stored.position);
            let mut delivery = NewDelivery {
                id: &id,
                channel: &channel.name,
                alarm: &number,
                position: stored.position,
                reason: reason.as_str(),
                severity: alarm.severity.as_str(),
                alarm_state: alarm.state_name(),
                body: &document,
                created_at,
                due_at: created_at,
                held_for: None,
                deferred: false,
            };
            // A flapping alarm is told at most one change per cooldown. While a change waits (deferred), every
            // later event of the alarm only makes it tell the latest state; when the cooldown ends it goes if
            // the receiver still needs it. An acknowledgement goes at once and tells the whole state, so
            // nothing needs to wait any more.
            if let Some(waiting) = outbox::deferred_of(tx, &channel.name, &number)? {
                written += 1;
                if reason != Reason::Acknowledged {
                    // What waits is a change: a repeat of a return that waits is still told as the return
                    // (its type, and the cooldown counted from it), with the latest state.
                    let as_return;
                    if reason == Reason::Repeated {
                        as_return = message::document(
                            Reason::Reactivated,
                            stored.occurred_at,
                            message::alarm_data(&self.site, &number, &alarm),
                        );
                        delivery.reason = Reason::Reactivated.as_str();
                        delivery.body = &as_return;
                    }
                    outbox::update_deferred(tx, &waiting, &delivery)?;
                    continue;
                }
                outbox::drop_deferred(tx, &waiting)?;
            }
            // Repeats wait out the cooldown, counted from when the channel last told the alarm active.
            if reason == Reason::Repeated
                && outbox::last_told(tx, &channel.name, &number, &Reason::TOLD_ACTIVE)?
                    .is_some_and(|at| created_at - at < cooldown)
            {
                continue;
            }
            // A clear or a return less than a cooldown after the channel told the previous one is deferred.
            if matches!(reason, Reason::Cleared | Reason::Reactivated)
                && let Some(until) = outbox::last_told(tx, &channel.name, &number, &["cleared", "reactivated"])?
                    .map(|at| at + cooldown)
                    .filter(|&until| until > created_at)
            {
                delivery.due_at = until;
                delivery.held_for = Some(outbox::HELD_FOR_COOLDOWN);
                delivery.deferred = true;
                outbox::insert(tx, &delivery)?;
                written += 1;
                continue;
            }
            if let Some(until) = self.quiet_until(channel, alarm.severity, stored.recorded_at) {
                delivery.due_at = until;
                delivery.held_for = Some(QUIET_HOURS);
            }
            outbox::insert(tx, &delivery)?;
            written += 1;
        }
        Ok(written)
    }

    /// When the channel's quiet hours holding `at` end (in outbox milliseconds), for an alarm below critical;
    /// `None` when it may go at once.
    fn quiet_until(&self, channel: &ChannelConfig, severity: Severity, at: jiff::Timestamp) -> Option<i64> {
        let quiet = channel.quiet_hours.filter(|_| severity < Severity::Critical)?;
        quiet.held_until(at, &self.timezone).map(millis)
    }

    /// Deferred notifications whose cooldown has ended: one that tells the receiver nothing new (the alarm is back
    /// in the state the channel last told) is dropped, the others become due (after quiet hours, below critical).
    /// Returns how many became due.
    fn release_deferred(&self, tx: &rusqlite::Transaction<'_>, now: jiff::Timestamp) -> anyhow::Result<usize> {
        let now_ms = millis(now);
        let mut released = 0;
        for due in outbox::deferred_due(tx, now_ms)? {
            // The whole state counts: a return also takes the acknowledgement back, which the receiver must
            // hear even when it last heard "active".
            if outbox::last_told_state(tx, &due.channel, &due.alarm)?.as_deref() == Some(due.alarm_state.as_str()) {
                outbox::drop_deferred(tx, &due.id)?;
                continue;
            }
            // Stored by this notifier from a `Severity`; anything else is held like any alarm below critical.
            let severity = Severity::parse(&due.severity).unwrap_or(Severity::Warning);
            let quiet = (self.channels.iter())
                .find(|c| c.name == due.channel)
                .and_then(|channel| self.quiet_until(channel, severity, now));
            let (due_at, held_for) = match quiet {
                Some(until) => (until, Some(QUIET_HOURS)),
                None => (now_ms, None),
            };
            outbox::release_deferred(tx, &due.id, now_ms, due_at, held_for)?;
            released += 1;
        }
        Ok(released)
    }

    /// Releases deferred notifications whose cooldown has ended, and writes an escalation for every alarm a
    /// channel last told of as critical and unacknowledged at least `repeat` ago. Returns how many it made due.
    pub fn escalate(&self, journal: &mut Connection, now: jiff::Timestamp) -> anyhow::Result<usize> {
        let now_ms = millis(now);
        let told_before = now_ms - self.repeat.as_millis() as i64;
        let tx = journal.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut written = self.release_deferred(&tx, now)?;
        for channel in &self.channels {
            for unanswered in outbox::unanswered_critical(&tx, &channel.name, told_before)? {
                let document = match message::escalation(&unanswered.body, now) {
                    Ok(document) => document,
                    Err(error) => {
                        tracing::error!(alarm = %unanswered.alarm, %error, "cannot escalate an alarm");
                        continue;
                    }
                };
                // Numbered per channel and alarm, so one written before a crash is not written twice.
                let id = format!(
                    "msg_{}_{}_e{}",
                    channel.name,
                    unanswered.alarm,
                    unanswered.escalations + 1
                );
                outbox::insert(
                    &tx,
                    &NewDelivery {
                        id: &id,
                        channel: &channel.name,
                        alarm: &unanswered.alarm,
                        position: unanswered.position,
                        reason: Reason::Escalated.as_str(),
                        severity: Severity::Critical.as_str(),
                        alarm_state: "active_unacknowledged",
                        body: &document,
                        created_at: now_ms.max(unanswered.told_at),
                        due_at: now_ms,
                        held_for: None,
                        deferred: false,
                    },
                )?;
                written += 1;
            }
        }
        tx.commit()?;
        Ok(written)
    }
}

/// An alarm's state from its events before `stored` (the follower met it first mid-life, after a restart).
fn fold_before(reader: &JournalReader, stored: &StoredEvent) -> anyhow::Result<AlarmState> {
    let mut state = AlarmState::default();
    for earlier in reader.stream_events(&stored.stream_id, 0)? {
        if earlier.position >= stored.position {
            break;
        }
        match &earlier.event {
            crate::codec::AnyEvent::Alarm(event) => state = Alarm::evolve(state, event),
            // Archival put the alarm's state in place of its oldest events.
            crate::codec::AnyEvent::Carried(carried) => state = carried.state_of::<Alarm>()?,
            _ => {}
        }
    }
    Ok(state)
}
