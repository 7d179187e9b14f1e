//! Preventive maintenance on a timetable: `cron` evaluates the schedules' expressions in the site's time zone.
//! The schedules themselves are aggregates (`domain::schedule`), reconciled with `config.toml` at boot; the
//! `scheduler` records each run as it falls due, and the maintenance policy turns a run into work orders.

pub mod cron;
pub mod scheduler;
