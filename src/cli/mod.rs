//! The command line (SPEC §1): parsing with clap and one function per subcommand. Errors come back as
//! [`Failure`], which `main` prints as `gatehouse: <subject>: <problem>` lines with exit status 1 or 2.
//! Commands that change state hand their work to the running server, or run it on a core of their own
//! (`own_core`): `dead_letters`, `operator` (lock-out, unlock) and `work_orders` (steps on an order).

mod accounts;
mod alarms;
mod archive;
pub mod dead_letters;
mod forget;
mod gateways;
mod operator;
mod own_core;
mod what_if;
mod work_orders;

use crate::app::Application;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::domain::{Aggregate, DeviceId, StreamName};
use crate::history::{fold_device, parse_instant};
use crate::journal::JournalReader;
use crate::requests::OperatorCommand;
use crate::simulate::SimulateOptions;
use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse",
    version,
    about = "Records everything a site's turnstiles and cameras do"
)]
pub struct Cli {
    /// The site's configuration file.
    #[arg(short, long, global = true, default_value = "config.toml")]
    pub config: PathBuf,
    /// Record changes as done by this Gatehouse user (`user:NAME`) instead of the OS user (`cli:OSUSER`).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The network view for many sites: consume every site's forwarded events and serve the network pages
    /// (the config file has an [hq] table and no devices).
    Hq,
    /// Run everything: journal, device actors, projectors, MQTT ingestion, web server.
    Serve {
        /// Also feed simulated traffic for the configured devices, so the pages come alive at once.
        #[arg(long)]
        demo: bool,
    },
    /// Publish realistic device traffic for the configured devices to an MQTT broker.
    Simulate {
        /// Messages per second, all devices together.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// How long to publish, in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Broker to publish to (mqtt://host:port); default: the configured embedded endpoint or broker.
        #[arg(long)]
        broker: Option<String>,
        /// Sign in as this gateway (`gatehouse gateway add` prints its username and password).
        #[arg(long, requires = "password")]
        username: Option<String>,
        #[arg(long, requires = "username")]
        password: Option<String>,
    },
    /// Validate the configuration and print a summary.
    CheckConfig,
    /// Rebuild read models from the journal (all when none is named); safe while `serve` runs.
    Rebuild {
        /// Projections to rebuild: device_status, traffic.
        projections: Vec<String>,
    },
    /// Move old events out of journal.db into verifiable archive files in [retention] archive_dir (what
    /// [retention] does by itself while serve runs; safe while it runs), or check the archive files.
    Archive {
        /// Archive the events recorded before this day (YYYY-MM-DD, site time) instead of [retention]'s limits.
        #[arg(long)]
        before: Option<String>,
        /// Check every archive file against the manifest (present, unchanged, chained); exit 1 on any problem.
        #[arg(long, conflicts_with = "before")]
        verify: bool,
    },
    /// Replay a scratch copy of the journal up to TIME, feed it the device messages in FILE (JSON lines
    /// {"topic","payload","at"}, each received at its `at`) through the normal ingest path, and print the
    /// resulting figures beside the real ones, or serve the copy's pages on ADDR. The live data is never touched.
    WhatIf {
        /// The instant the copy starts from (RFC 3339, or a local date-time in the site's time zone).
        #[arg(long)]
        until: String,
        /// Device messages to feed the copy, one JSON object per line.
        #[arg(long)]
        inject: Option<std::path::PathBuf>,
        /// Serve the copy's pages here (until Ctrl-C) instead of printing figures.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print journal events as JSON lines.
    Events {
        /// Only this device's events.
        #[arg(long)]
        stream: Option<String>,
        /// Only events after this journal position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep printing new events as they are committed.
        #[arg(long)]
        follow: bool,
    },
    /// Print a device's state folded from its events, now or as of a past instant.
    State {
        device: String,
        /// RFC 3339 instant (2026-03-01T09:00:00Z), or a local date-time in the site's time zone
        /// (2026-03-01T09:00): only events that occurred up to then are folded.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Write a consistent copy of all databases into the directory PATH while `serve` runs.
    Backup { path: PathBuf },
    /// Manage web users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the identities gateways sign in to the embedded MQTT endpoint with.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Manage API tokens for scripts and BI tools.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Take a turnstile out of service: its gateway is told to lock it (passages still get recorded, flagged).
    LockOut {
        device: String,
        /// Why: shown on the dashboard and sent to the gateway.
        #[arg(long)]
        reason: String,
    },
    /// Put a locked-out turnstile back in service.
    Unlock { device: String },
    /// Forget a person (GDPR erasure; admin): their identifier becomes unreadable everywhere (journal, read
    /// tables, pages, CSV, `gatehouse events`, notifications, archives and backups made afterwards). Events keep
    /// their shape; the person reads as "forgotten". Copies already forwarded to a NATS stream are the receiver's.
    Forget { subject: String },
    /// Void a wrongly recorded passage or recognition (a technician's test rotations, the wrong person): a
    /// correcting event that references it; reports, occupancy and attendance leave it out. The journal
    /// position is in `gatehouse events` and on the device's page.
    Void {
        position: u64,
        /// Why: kept beside the fact and shown on the device's timeline.
        #[arg(long)]
        reason: String,
    },
    /// List work orders, newest first, one per line, tab-separated: id, device, kind, state, opened, due,
    /// assignee, title.
    WorkOrders {
        /// Only orders in this state: open, acknowledged, in_progress, resolved, cancelled, or active (any of
        /// the first three).
        #[arg(long)]
        state: Option<String>,
        /// Only this device's orders.
        #[arg(long)]
        device: Option<String>,
    },
    /// Take a step in a work order's life.
    WorkOrder {
        /// The order's number, WO-000123.
        id: String,
        #[command(subcommand)]
        step: WorkOrderStepArg,
    },
    /// The watch list whose sightings raise alarms.
    Watch {
        #[command(subcommand)]
        command: WatchCommand,
    },
    /// Correct a zone's count of people inside (recorded as an event, with who and why).
    Occupancy {
        #[command(subcommand)]
        command: OccupancyCommandArg,
    },
    /// List alarms, active first, one per line, tab-separated: id, severity, state, type, source, last seen,
    /// count.
    Alarms {
        /// Only active alarms.
        #[arg(long)]
        active: bool,
    },
    /// Acknowledge or clear an alarm.
    Alarm {
        /// The alarm's number, A-000003.
        id: String,
        #[command(subcommand)]
        step: AlarmStepArg,
    },
    /// List messages that could not become events (with reasons), or re-drive / discard them.
    DeadLetters {
        /// Re-drive one dead letter (after fixing its cause, e.g. adding its device to config.toml).
        #[arg(long, value_name = "ID", conflicts_with_all = ["redrive_all", "discard"])]
        redrive: Option<i64>,
        /// Re-drive every open dead letter.
        #[arg(long, conflicts_with = "discard")]
        redrive_all: bool,
        /// Discard one dead letter: it is kept, but no longer listed.
        #[arg(long, value_name = "ID")]
        discard: Option<i64>,
        /// Also list re-driven and discarded letters.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OccupancyCommandArg {
    /// Set ZONE's count of people inside to COUNT.
    Set {
        zone: String,
        count: u64,
        /// Why (a headcount, a door left open): kept with the count.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WatchCommand {
    /// Put a subject on a list (or change its entry).
    Add {
        subject: String,
        /// Which list: banned, missing-person, vip, …
        #[arg(long)]
        list: String,
        /// critical, major, minor or warning: the severity of the alarm a sighting raises.
        #[arg(long)]
        severity: String,
        #[arg(long)]
        note: Option<String>,
        /// The last day (site time) a sighting raises an alarm, e.g. 2026-12-31.
        #[arg(long)]
        until: Option<String>,
    },
    /// Take a subject off the watch list.
    Remove { subject: String },
    /// List the watch list: subject, list, severity, until, note (tab-separated).
    List,
}

#[derive(Subcommand, Debug)]
pub enum AlarmStepArg {
    /// Take note of the alarm (it stays active until its trouble is over or it is cleared).
    Ack {
        #[arg(long)]
        note: Option<String>,
    },
    /// Clear the alarm (refused while the trouble behind a lasting alarm goes on).
    Clear {
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WorkOrderStepArg {
    /// Take note of an open order.
    Ack,
    /// Give the order to a technician (any name, not necessarily a Gatehouse user).
    Assign { technician: String },
    /// The assigned technician begins the work.
    Start,
    /// The work is done.
    Resolve {
        /// What was done.
        #[arg(long)]
        note: String,
    },
    /// The order will not be done.
    Cancel {
        #[arg(long)]
        reason: String,
    },
    /// Add a line to the order's timeline.
    Comment { text: String },
}

impl WorkOrderStepArg {
    /// The step's name and its text, as `requests::WorkOrderStep::parse` reads them.
    fn parts(&self) -> (&'static str, &str) {
        match self {
            WorkOrderStepArg::Ack => ("ack", ""),
            WorkOrderStepArg::Assign { technician } => ("assign", technician),
            WorkOrderStepArg::Start => ("start", ""),
            WorkOrderStepArg::Resolve { note } => ("resolve", note),
            WorkOrderStepArg::Cancel { reason } => ("cancel", reason),
            WorkOrderStepArg::Comment { text } => ("comment", text),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Create a gateway identity (or give an existing one new devices and new secrets) and print, once,
    /// mqtt_username=, mqtt_password= and http_token= lines.
    Add {
        name: String,
        /// The devices it may report for (and whose command topics it may subscribe to): T1,T2,C1.
        #[arg(long, default_value = "")]
        devices: String,
        /// It may also subscribe to {prefix}/alarms/#.
        #[arg(long)]
        alarms: bool,
    },
    /// List gateway identities: name, devices, alarms, created (tab-separated).
    List,
    /// Remove a gateway identity: it can no longer sign in.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, or update an existing user's role and password (which also enables a disabled one); the
    /// password is read from stdin (one line).
    Add {
        name: String,
        #[arg(long, value_parser = ["manager", "admin"])]
        role: String,
    },
    /// List users: name, role, created, disabled (tab-separated).
    List,
    /// Disable a user: they can no longer sign in and their sessions end.
    Disable { name: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a new API token (shown once; only its hash is kept). Send it as `Authorization: Bearer TOKEN`.
    Create {
        /// What the token is for, e.g. grafana.
        name: String,
        #[arg(long, value_parser = ["manager", "admin"])]
        role: String,
    },
    /// List tokens by name: name, role, created (tab-separated; the tokens themselves are not kept).
    List,
    /// Revoke every token of that name.
    Revoke { name: String },
}

/// A failed command: `Usage` exits with status 2 (bad configuration or arguments), `Runtime` with 1.
#[derive(Debug)]
pub enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Runtime(error)
    }
}

/// The site's subject vault, for sealing what a person types and revealing what is printed; a journal from before
/// sealing is re-encrypted first (and its read tables rebuilt), as a serving core does at start.
fn open_vault(config: &Config) -> Result<crate::privacy::SubjectVault, Failure> {
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare().map_err(Failure::Runtime)?;
    crate::db::upgrade_journal(&paths.journal()).map_err(Failure::Runtime)?;
    crate::privacy::open_and_reseal_blocking(config, &paths).map_err(Failure::Runtime)
}

/// Re-encrypts a journal from before sealing, if there is a journal at all (commands that only read it).
fn reseal_existing(config: &Config) -> Result<(), Failure> {
    if StoragePaths::new(&config.storage.dir).journal().exists() {
        open_vault(config)?;
    }
    Ok(())
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    Config::load(&cli.config).map_err(|e| Failure::Usage(anyhow!(e.to_string())))
}

/// Who the command's changes are recorded as: `user:NAME` with `--as NAME` (an existing Gatehouse user), else
/// `cli:OSUSER`.
fn actor(config: &Config, as_user: Option<&str>) -> Result<crate::journal::Actor, Failure> {
    let Some(name) = as_user else {
        return Ok(crate::journal::Actor::cli());
    };
    if user_role(config, name)?.is_none() {
        return Err(Failure::Usage(anyhow!(
            "--as {name}: no such user (add one with `gatehouse user add {name} --role manager`)"
        )));
    }
    Ok(crate::journal::Actor::user(name))
}

/// Who an admin-only command's changes are recorded as: `cli:OSUSER` (whoever may run it on the data directory)
/// or, with `--as NAME`, a user who is an admin (`what` names the command in the refusal).
fn admin_actor(config: &Config, as_user: Option<&str>, what: &str) -> Result<crate::journal::Actor, Failure> {
    let Some(name) = as_user else {
        return Ok(crate::journal::Actor::cli());
    };
    match user_role(config, name)?.as_deref() {
        Some("admin") => Ok(crate::journal::Actor::user(name)),
        Some(_) => Err(Failure::Usage(anyhow!("--as {name}: {what} takes an admin"))),
        None => Err(Failure::Usage(anyhow!("--as {name}: no such user"))),
    }
}

/// The role (`manager`, `admin`) of web user `name`, if there is one.
fn user_role(config: &Config, name: &str) -> Result<Option<String>, Failure> {
    use rusqlite::OptionalExtension;
    let journal = StoragePaths::new(&config.storage.dir).journal();
    let conn = crate::auth::open(&journal)?;
    Ok(conn
        .query_row("SELECT role FROM users WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .context("journal.db: cannot look up users")?)
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let config = load_config(&cli)?;
    let as_user = cli.as_user.clone();
    match cli.command {
        Command::Serve { demo } => serve(config, demo),
        Command::Hq => hq(config),
        Command::Simulate {
            rate,
            duration,
            broker,
            username,
            password,
        } => simulate(config, rate, duration, broker.as_deref(), username.zip(password)),
        Command::Gateway { command } => match command {
            GatewayCommand::Add { name, devices, alarms } => gateways::add(&config, &name, &devices, alarms),
            GatewayCommand::List => gateways::list(&config),
            GatewayCommand::Remove { name } => gateways::remove(&config, &name),
        },
        Command::CheckConfig => {
            // A closed pipe (`| head`) ends the command quietly, like `events`.
            let _ = std::io::stdout().lock().write_all(config.summary().as_bytes());
            Ok(())
        }
        Command::Rebuild { projections } => {
            reseal_existing(&config)?;
            rebuild(&config, &projections)
        }
        Command::WhatIf { until, inject, listen } => what_if::run(config, &until, inject.as_deref(), listen),
        Command::Archive { verify: true, .. } => archive::verify(&config),
        Command::Archive { before, .. } => {
            // Nothing goes into an archive file in clear.
            reseal_existing(&config)?;
            archive::run(&config, before.as_deref())
        }
        Command::Events { stream, after, follow } => events(&config, stream, after, follow),
        Command::State { device, as_of } => {
            reseal_existing(&config)?;
            state(&config, &device, as_of.as_deref())
        }
        Command::Backup { path } => backup(&config, &path),
        Command::User { command } => match command {
            UserCommand::Add { name, role } => user_add(&config, &name, &role),
            UserCommand::List => accounts::user_list(&config),
            UserCommand::Disable { name } => accounts::user_disable(&config, &name),
        },
        Command::Token { command } => match command {
            TokenCommand::Create { name, role } => token_create(&config, &name, &role),
            TokenCommand::List => accounts::token_list(&config),
            TokenCommand::Revoke { name } => accounts::token_revoke(&config, &name),
        },
        Command::LockOut { device, reason } => {
            let command = crate::requests::OperatorCommand::lock_out(&device_arg(&device)?, &reason)
                .map_err(|e| Failure::Usage(anyhow!("lock-out {device}: {e}")))?;
            let by = actor(&config, as_user.as_deref())?;
            operator::run(config, &command, &by)
        }
        Command::Unlock { device } => {
            let command = crate::requests::OperatorCommand::unlock(&device_arg(&device)?);
            let by = actor(&config, as_user.as_deref())?;
            operator::run(config, &command, &by)
        }
        Command::Forget { subject } => forget::forget(config, &subject, as_user.as_deref()),
        Command::Void { position, reason } => {
            let command = crate::requests::OperatorCommand::void(position, &reason)
                .map_err(|e| Failure::Usage(anyhow!("void {position}: {e}")))?;
            let by = actor(&config, as_user.as_deref())?;
            operator::run(config, &command, &by)
        }
        Command::WorkOrders { state, device } => work_orders::list(&config, state.as_deref(), device.as_deref()),
        Command::WorkOrder { id, step } => {
            let by = actor(&config, as_user.as_deref())?;
            let (name, text) = step.parts();
            work_orders::step(config, &id, name, text, &by)
        }
        Command::Watch { command } => match command {
            WatchCommand::Add {
                subject,
                list,
                severity,
                note,
                until,
            } => {
                let by = admin_actor(&config, as_user.as_deref(), "changing the watch list")?;
                alarms::watch_add(
                    config,
                    &subject,
                    (&list, &severity),
                    note.as_deref(),
                    until.as_deref(),
                    &by,
                )
            }
            WatchCommand::Remove { subject } => {
                let by = admin_actor(&config, as_user.as_deref(), "changing the watch list")?;
                alarms::watch_remove(config, &subject, &by)
            }
            WatchCommand::List => alarms::watch_list(&config),
        },
        Command::Occupancy {
            command: OccupancyCommandArg::Set { zone, count, reason },
        } => {
            let by = actor(&config, as_user.as_deref())?;
            let command = OperatorCommand::occupancy(&zone, count, &reason, &config.zone_names())
                .map_err(|e| Failure::Usage(anyhow::anyhow!("occupancy set: {e}")))?;
            operator::run(config, &command, &by)
        }
        Command::Alarms { active } => alarms::list(&config, active),
        Command::Alarm { id, step } => {
            let by = actor(&config, as_user.as_deref())?;
            let (name, note) = match &step {
                AlarmStepArg::Ack { note } => ("ack", note.as_deref()),
                AlarmStepArg::Clear { note } => ("clear", note.as_deref()),
            };
            alarms::step(config, &id, name, note, &by)
        }
        Command::DeadLetters {
            redrive,
            redrive_all,
            discard,
            all,
        } => {
            let by = match redrive.is_some() || redrive_all {
                true => actor(&config, as_user.as_deref())?,
                false => crate::journal::Actor::cli(),
            };
            dead_letters::run(config, redrive, redrive_all, discard, all, &by)
        }
    }
}

/// A device id given on the command line.
fn device_arg(text: &str) -> Result<String, Failure> {
    DeviceId::parse(text)
        .map(|id| id.to_string())
        .map_err(|e| Failure::Usage(anyhow!("{text}: {e}")))
}

fn backup(config: &Config, target: &std::path::Path) -> Result<(), Failure> {
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} pages")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    let copied = crate::backup::backup(&config.storage.dir, target, |file, remaining, total| {
        bar.set_message(file.to_owned());
        bar.set_length(total.max(1) as u64);
        bar.set_position((total - remaining).max(0) as u64);
    })?;
    bar.finish_and_clear();
    for (file, size) in copied {
        println!("backed up {file} ({size} bytes) to {}", target.join(&file).display());
    }
    Ok(())
}

fn user_add(config: &Config, name: &str, role: &str) -> Result<(), Failure> {
    let role: crate::auth::Role = role.parse().map_err(|e: String| Failure::Usage(anyhow!(e)))?;
    crate::auth::validate_user_name(name).map_err(Failure::Usage)?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "user add: no password on stdin (pipe it in: echo 'secret' | gatehouse user add {name} --role {role})"
        )));
    }
    let conn = crate::auth::open(&StoragePaths::new(&config.storage.dir).journal())?;
    let created = crate::auth::add_user(&conn, name, role, password).map_err(Failure::Usage)?;
    println!("{} user {name} ({role})", if created { "created" } else { "updated" });
    Ok(())
}

fn token_create(config: &Config, name: &str, role: &str) -> Result<(), Failure> {
    let role: crate::auth::Role = role.parse().map_err(|e: String| Failure::Usage(anyhow!(e)))?;
    let conn = crate::auth::open(&StoragePaths::new(&config.storage.dir).journal())?;
    let token = crate::auth::create_token(&conn, name, role).map_err(Failure::Usage)?;
    println!("{token}");
    eprintln!("gatehouse: token {name:?} ({role}) created; it is shown only this once");
    Ok(())
}

/// Messages per second the `--demo` feed publishes: lively pages, a journal that grows slowly.
const DEMO_RATE: f64 = 10.0;

fn serve(config: Config, demo: bool) -> Result<(), Failure> {
    if config.hq.is_some() {
        return Err(Failure::Usage(anyhow!(
            "this config has an [hq] table: it configures the network view; run `gatehouse hq`"
        )));
    }
    // The demo's simulated gateway signs in like a real one: an identity for every device, made afresh.
    let demo_gateway = match demo && config.mqtt.broker == crate::config::Broker::Embedded && config.mqtt.require_auth {
        true => Some(demo_gateway(&config)?),
        false => None,
    };
    let system = actix_web::rt::System::new();
    let writer_thread = system.block_on(async move {
        let app = Application::build(config).await?;
        println!("gatehouse: serving http://{}/ (Ctrl-C to stop)", app.http_addr());
        if let Some(mqtt) = app.mqtt_addr() {
            println!("gatehouse: gateways publish to mqtt://{mqtt} (embedded endpoint)");
        }
        if demo {
            // A newcomer should see the pages at once: with nobody to sign in as, make a demo admin.
            let conn = crate::auth::open(&app.state().paths.journal())?;
            if !crate::auth::has_users(&conn)? {
                let password = crate::auth::random_password();
                crate::auth::add_user(&conn, "demo", crate::auth::Role::Admin, &password)?;
                println!("gatehouse: demo: sign in as \"demo\" with password \"{password}\"");
            }
            drop(conn);
            let config = app.state().config.clone();
            let (host, port) = match app.mqtt_addr() {
                Some(addr) => (loopback_for(addr.ip()), addr.port()),
                None => broker_target(&config, None)?,
            };
            println!("gatehouse: demo: simulating {DEMO_RATE} device messages per second");
            let mut options = SimulateOptions::for_site(&config, host, port, DEMO_RATE, None);
            if let Some(credentials) = demo_gateway {
                println!(
                    "gatehouse: demo: the simulated gateway signs in as {:?}",
                    credentials.mqtt_username
                );
                options.username = Some(credentials.mqtt_username);
                options.password = Some(credentials.mqtt_password);
            }
            actix_web::rt::spawn(async move {
                if let Err(error) = crate::simulate::run(&config, options, std::future::pending()).await {
                    tracing::error!(error = %format!("{error:#}"), "demo traffic stopped");
                }
            });
        }
        // actix-web itself stops on SIGINT/SIGTERM; no other shutdown trigger for the command line.
        app.run_until_stopped(std::future::pending()).await
    })?;
    // Dropping the system drops the actors and with them the last writer handles; the writer then finishes.
    drop(system);
    writer_thread.join();
    Ok(())
}

fn hq(config: Config) -> Result<(), Failure> {
    if config.hq.is_none() {
        return Err(Failure::Usage(anyhow!(
            "`gatehouse hq` needs an [hq] table in its config (nats, stream, subjects, durable; see config.toml)"
        )));
    }
    let system = actix_web::rt::System::new();
    system.block_on(crate::hq::run(config))?;
    Ok(())
}

/// The `demo` gateway identity, for every configured device, with fresh secrets.
fn demo_gateway(config: &Config) -> anyhow::Result<crate::gateways::Credentials> {
    let devices = config.device_ids().into_iter().map(|(id, _)| id).collect();
    let conn = crate::auth::open(&StoragePaths::new(&config.storage.dir).journal())?;
    crate::gateways::add(&conn, "demo", &devices, false)
}

/// Where a client on this machine reaches a listener bound to `ip` (0.0.0.0 means every interface).
fn loopback_for(ip: std::net::IpAddr) -> String {
    if ip.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        ip.to_string()
    }
}

/// The broker `simulate` publishes to: `--broker URL`, else the configured one.
fn broker_target(config: &Config, url: Option<&str>) -> anyhow::Result<(String, u16)> {
    if let Some(url) = url {
        let rest = url
            .strip_prefix("mqtt://")
            .ok_or_else(|| anyhow!("--broker {url:?}: expected mqtt://host:port (the simulator does not speak TLS)"))?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| anyhow!("--broker {url:?}: {port:?} is not a port number"))?,
            ),
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(anyhow!("--broker {url:?}: no host"));
        }
        return Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
    }
    match &config.mqtt.broker {
        crate::config::Broker::Embedded => Ok((loopback_for(config.mqtt.listen.ip()), config.mqtt.listen.port())),
        crate::config::Broker::External { tls: true, url, .. } => Err(anyhow!(
            "simulate: the configured broker {url} uses TLS, which the simulator does not speak: pass --broker mqtt://host:port"
        )),
        crate::config::Broker::External { host, port, .. } => Ok((host.clone(), *port)),
    }
}

fn simulate(
    config: Config,
    rate: f64,
    duration: u64,
    broker: Option<&str>,
    login: Option<(String, String)>,
) -> Result<(), Failure> {
    let (host, port) = broker_target(&config, broker).map_err(Failure::Usage)?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(Failure::Usage(anyhow!(
            "--rate {rate}: expected a positive number of messages per second"
        )));
    }
    let mut options = SimulateOptions {
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..SimulateOptions::for_site(&config, host, port, rate, Some(Duration::from_secs(duration)))
    };
    if let Some((username, password)) = login {
        options.username = Some(username);
        options.password = Some(password);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")?;
    let report = runtime.block_on(crate::simulate::run(&config, options, async {
        let _ = tokio::signal::ctrl_c().await;
    }))?;
    println!("{report}");
    if report.acked < report.sent {
        return Err(Failure::Runtime(anyhow!(
            "simulate: {} of {} messages were not acknowledged by the broker",
            report.sent - report.acked,
            report.sent
        )));
    }
    Ok(())
}

fn rebuild(config: &Config, names: &[String]) -> Result<(), Failure> {
    let known = crate::projection::names();
    for name in names {
        if !known.contains(&name.as_str()) {
            return Err(Failure::Usage(anyhow!(
                "rebuild: unknown projection {name:?}, expected one of: {}",
                known.join(", ")
            )));
        }
    }
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    let projections: Vec<_> = crate::projection::all(&config.site.timezone)
        .into_iter()
        .filter(|p| names.is_empty() || names.iter().any(|n| n == p.name()))
        .collect();
    let head = JournalReader::open(&paths.journal())?.head()?;
    let bar = indicatif::ProgressBar::new(head.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let built = crate::projection::rebuild::rebuild(
        projections,
        &paths.journal(),
        &paths.views(),
        &config.retention.archive_dir,
        config.followers.on_error,
        |name, position| {
            if bar.message() != name {
                bar.set_message(name.to_owned());
                bar.reset();
            }
            bar.set_position(position);
        },
    )?;
    bar.finish_and_clear();
    for (name, position) in built {
        println!("rebuilt {name} up to position {position}");
    }
    println!("done in {:.1?}", started.elapsed());
    Ok(())
}

fn events(config: &Config, stream: Option<String>, after: u64, follow: bool) -> Result<(), Failure> {
    let paths = StoragePaths::new(&config.storage.dir);
    crate::db::upgrade_journal(&paths.journal())?;
    let journal = JournalReader::open(&paths.journal())?;
    let vault = open_vault(config)?;
    let stream = stream
        .map(|s| StreamName::parse(&s).map_err(|e| Failure::Usage(anyhow!("--stream: {e}"))))
        .transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut position = after;
    loop {
        let batch = journal.events_after_lenient(position, 1000)?;
        for event in &batch {
            let line = match event {
                Ok(event) => {
                    position = event.position;
                    // Followed past an erasure (made by the server), the person is forgotten here too.
                    if let crate::codec::AnyEvent::Presence(crate::domain::PresenceEvent::Forgotten(_)) = event.event
                        && let Ok(person) = crate::domain::Pseudonym::parse(event.stream_id.id())
                    {
                        vault.mark_forgotten(&person);
                    }
                    if stream.as_ref().is_some_and(|s| *s != event.stream_id) {
                        continue;
                    }
                    // People read as their identifiers (or "forgotten"); the stream keeps its pseudonym name.
                    let mut line = event.to_json();
                    vault.reveal_json(&mut line["data"]);
                    line
                }
                // An event this program cannot read is shown with why, never skipped silently.
                Err(unreadable) => {
                    position = unreadable.position;
                    if stream.as_ref().is_some_and(|s| s.as_str() != unreadable.stream_id) {
                        continue;
                    }
                    serde_json::json!({
                        "position": unreadable.position,
                        "stream": unreadable.stream_id,
                        "type": unreadable.event_type,
                        "error": unreadable.error,
                    })
                }
            };
            // A closed pipe (`| head`) ends the command quietly.
            if writeln!(out, "{line}").is_err() {
                return Ok(());
            }
        }
        if batch.is_empty() {
            if !follow {
                break;
            }
            if out.flush().is_err() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    out.flush().ok();
    Ok(())
}

fn state(config: &Config, device: &str, as_of: Option<&str>) -> Result<(), Failure> {
    let usage = |e: &dyn std::fmt::Display| Failure::Usage(anyhow!("{device}: {e}"));
    let as_of = as_of
        .map(|t| parse_instant(t, &config.site.timezone).map_err(|e| Failure::Usage(e.context("--as-of"))))
        .transpose()?;
    let paths = StoragePaths::new(&config.storage.dir);
    // `kind:id` names another kind's stream; a bare id is a device.
    if device.contains(':') {
        let stream = StreamName::parse(device).map_err(|e| usage(&e))?;
        crate::db::upgrade_journal(&paths.journal())?;
        let journal = JournalReader::open(&paths.journal())?;
        use crate::codec::AnyEvent;
        use crate::domain::{Alarm, WatchList, WorkOrder};
        let folded = match stream.kind() {
            WorkOrder::KIND => {
                crate::domain::work_order::WorkOrderNumber::parse(stream.id()).map_err(|e| usage(&e))?;
                as_json(crate::history::fold_work_order(&journal, &stream, as_of)?)
            }
            Alarm::KIND => {
                crate::domain::alarm::AlarmNumber::parse(stream.id()).map_err(|e| usage(&e))?;
                as_json(crate::history::fold_stream::<Alarm>(
                    &journal,
                    &stream,
                    as_of,
                    |e| match e {
                        AnyEvent::Alarm(e) => Some(e),
                        _ => None,
                    },
                )?)
            }
            WatchList::KIND => as_json(crate::history::fold_stream::<WatchList>(
                &journal,
                &stream,
                as_of,
                |e| match e {
                    AnyEvent::WatchList(e) => Some(e),
                    _ => None,
                },
            )?),
            other => {
                return Err(usage(&format!(
                    "unknown aggregate kind {other:?}: streams are a device's bare id (T1), work_order:WO-000123, \
                     alarm:A-000003 or watch_list:site"
                )));
            }
        };
        let (state, version) =
            folded.with_context(|| format!("{device}: no such {}: the journal has no events for it", stream.kind()))?;
        return print_state(serde_json::json!({
            "stream": stream.as_str(),
            "as_of": as_of.map(|t| t.to_string()),
            "version": version,
            "state": state,
        }));
    }
    // A bare id is a device: its own rules word the error best.
    let id = DeviceId::parse(device).map_err(|e| usage(&e))?;
    crate::db::upgrade_journal(&paths.journal())?;
    let journal = JournalReader::open(&paths.journal())?;
    let (state, version) = fold_device(&journal, &id, as_of)?
        .with_context(|| format!("{device}: unknown device: the journal has no events for it"))?;
    print_state(serde_json::json!({
        "device": id.as_str(),
        "as_of": as_of.map(|t| t.to_string()),
        "version": version,
        "state": state,
    }))
}

/// A folded state (and its version) as JSON.
fn as_json<S: serde::Serialize>(folded: Option<(S, u64)>) -> Option<(serde_json::Value, u64)> {
    folded.map(|(state, version)| (serde_json::json!(state), version))
}

fn print_state(output: serde_json::Value) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(&output).context("state: cannot render JSON")?
    );
    Ok(())
}
