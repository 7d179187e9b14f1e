//! Black-box tests of the event-sourced core: the real SQLite files, the real writer thread, real actors and
//! projectors, and the real binary for the command line.

mod admin;
mod alarm_pages;
mod alarm_sources;
mod alarms;
mod auth;
mod bad_input;
mod browser;
mod cli;
mod crash;
mod dead_letters;
mod facts;
mod fixture;
mod followers;
mod full_disk;
mod gateway_auth;
mod helpers;
mod ingest;
mod journal;
mod load;
mod lockout;
mod mqtt_embedded;
mod mqtt_external;
mod notifications;
mod notify_mqtt;
mod pages;
mod policies;
mod presence;
mod projections;
mod receivers;
mod recovery;
mod reports;
mod serve;
mod simulate;
mod work_orders;
