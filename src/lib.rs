//! Gatehouse records everything a site's turnstiles and cameras do and shows managers what happened.
//!
//! - `domain`: pure aggregates (deciders): devices, work orders. No I/O.
//! - `codec`: the only user of bincode; event and snapshot bytes.
//! - `config`: `config.toml` into typed settings.
//! - `db`: opening SQLite files, migrations.
//! - `journal`: the append-only event store (one writer thread, read-only readers).

pub mod actors;
pub mod alarms;
pub mod app;
pub mod archive;
pub mod auth;
pub mod backup;
pub mod checkpointer;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod config;
pub mod db;
pub mod dead_letters;
pub mod domain;
pub mod forward;
pub mod fuzzing;
pub mod gateways;
pub mod history;
pub mod hq;
pub mod inbox;
pub mod ingest;
pub mod journal;
pub mod maintenance;
pub mod mqtt;
pub mod notify;
pub mod policy;
pub mod presence;
pub mod privacy;
pub mod projection;
pub mod pseudonym;
pub mod requests;
pub mod simulate;
pub mod telemetry;
pub mod tls;
pub mod visible;
pub mod web;
pub mod what_if;
pub mod work_orders;
