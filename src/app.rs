//! Starting and stopping the whole program for `gatehouse serve`: storage, journal writer, device actors,
//! projectors and the web server. `Application::build` binds every listener (port 0 works: tests read the real
//! port back), `run_until_stopped` serves until the shutdown future resolves or a signal arrives.

use crate::actors::start_devices;
use crate::config::{Broker, Config};
use crate::db::StoragePaths;
use crate::db::lock_data_dir;
use crate::ingest::Ingestor;
use crate::journal::{JournalWriter, WriterThread};
use crate::mqtt::embedded::{Admission, EmbeddedEndpoint};
use crate::mqtt::external::ExternalSubscriber;
use crate::mqtt::subscriptions::CommandDelivery;
use crate::projection::runner::start_projectors;
use crate::web::AppState;
use crate::web::pool::ReadPool;
use anyhow::Context;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Everything but the listeners: storage, journal writer, device actors, projectors and the ingestor. `serve`
/// wraps it with the web server and MQTT; one-off commands (re-driving dead letters with no server running)
/// start it alone. Must run inside an actix system.
pub struct Core {
    state: AppState,
    stopped: Stopped,
}

/// What is left to wait for once the actix system is gone: the writer finishing, then the lock's release.
pub struct Stopped {
    writer_thread: WriterThread,
    /// Keeps views.db's write-ahead log small while anything may still write there.
    views_checkpointer: crate::checkpointer::Checkpointer,
    lock: std::fs::File,
}

impl Stopped {
    /// Waits until the writer has committed everything it was sent, then releases the data directory. Call after
    /// the actix system (and with it every writer handle) is dropped.
    pub fn join(self) {
        self.writer_thread.join();
        drop(self.views_checkpointer);
        drop(self.lock);
    }
}

impl Core {
    pub async fn start(config: Config) -> anyhow::Result<Core> {
        let policies = crate::policy::all(&config);
        Self::start_with(config, policies, Default::default()).await
    }

    /// [`Core::start`] with these policies instead of the program's own (tests prove the framework with theirs).
    pub async fn start_with_policies(
        config: Config,
        policies: Vec<Box<dyn crate::policy::Policy>>,
    ) -> anyhow::Result<Core> {
        Self::start_with(config, policies, Default::default()).await
    }

    /// Starts the core, telling `progress` how far device recovery has got.
    pub async fn start_with(
        config: Config,
        policies: Vec<Box<dyn crate::policy::Policy>>,
        progress: Arc<crate::actors::RecoveryProgress>,
    ) -> anyhow::Result<Core> {
        let paths = StoragePaths::new(&config.storage.dir);
        paths.prepare()?;
        let lock = lock_data_dir(&paths)?;
        let (writer, writer_thread) = JournalWriter::open(&paths.journal(), config.storage.synchronous)?;
        let vault = crate::privacy::open_and_reseal(&config, &paths).await?;
        let views_checkpointer = crate::checkpointer::spawn(&paths.views(), "views")?;
        let registry = start_devices(&config, writer.clone(), &paths.journal(), progress).await?;
        crate::maintenance::scheduler::reconcile(&config, &registry, &paths.journal()).await?;
        catch_up_from_archives(&config, &paths).await?;
        let mut projectors = start_projectors(
            crate::projection::all(&config.site.timezone),
            &paths.journal(),
            &paths.views(),
            writer.committed(),
            config.followers.on_error,
        )?;
        // Policies are followers too: the same page, health check, metrics and read-your-writes waits.
        projectors.extend(crate::policy::start_policies(
            policies,
            registry.clone(),
            &paths.journal(),
            &paths.views(),
            writer.committed(),
            config.followers.on_error,
            config.clock.clone(),
        )?);
        let alarm_topics = crate::notify::AlarmTopics::new(&config.mqtt)?;
        let notifier = crate::notify::start(
            &config,
            paths.journal(),
            writer.committed(),
            alarm_topics,
            vault.clone(),
        )
        .await?;
        projectors.push(notifier.follower.clone());
        let bounds = crate::ingest::ClockBounds {
            max_ahead: config.devices.max_clock_skew,
            max_behind: config.devices.max_backdate,
        };
        let ingestor = Ingestor::new(
            registry.clone(),
            writer.clone(),
            config.mqtt.topic_prefix.clone(),
            bounds,
            crate::ingest::DeadLetterQuota::new(config.mqtt.dead_letter_quota),
            vault.clone(),
        );
        let commands_follower = projectors
            .iter()
            .find(|p| p.name == "device_commands")
            .cloned()
            .context("the device_commands projector is not running")?;
        let turnstiles = config.turnstiles.iter().map(|t| t.id.clone()).collect();
        let boot_head = *writer.committed().borrow();
        let commands = crate::mqtt::commands::follow(
            paths.views(),
            commands_follower,
            &config.mqtt.topic_prefix,
            turnstiles,
            boot_head,
        )
        .await?;
        let (views_reader, journal_reader) = (ReadPool::new(paths.views()), ReadPool::new(paths.journal()));
        let forward = config.forward.clone().map(|forward| {
            let status = Arc::new(crate::forward::ForwardStatus::default());
            crate::forward::Forwarder {
                config: forward,
                site: crate::forward::cloudevent::SiteIdentity {
                    // `[forward]` requires `[site] id` (config validation).
                    id: config.site.id.clone().unwrap_or_default(),
                    timezone: config.site.timezone_name.clone(),
                },
                journal_path: paths.journal(),
                vault: vault.clone(),
                committed: writer.committed(),
                status: status.clone(),
            }
            .spawn();
            status
        });
        let state = AppState {
            config: Arc::new(config),
            paths,
            registry,
            ingestor,
            projectors,
            committed: writer.committed(),
            external_mqtt: None,
            embedded_mqtt: None,
            writer_stats: writer.stats(),
            writer,
            http_metrics: Default::default(),
            views_reader,
            journal_reader,
            vault,
            commands,
            notifier,
            forward,
            subject_lists: Default::default(),
        };
        Ok(Core {
            state,
            stopped: Stopped {
                writer_thread,
                views_checkpointer,
                lock,
            },
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops taking work; see [`Stopped::join`].
    pub fn stop(self) -> Stopped {
        self.stopped
    }
}

/// A started Gatehouse with its web listener bound. Must be built and run inside an actix system.
pub struct Application {
    core: Core,
    http: TcpListener,
    http_addr: SocketAddr,
    mqtt: Mqtt,
}

/// How device messages arrive.
enum Mqtt {
    /// Gateways connect to us (`[mqtt] broker = "embedded"`).
    Embedded(EmbeddedEndpoint),
    /// We subscribe at a broker the gateways publish to.
    External(ExternalSubscriber),
}

impl Mqtt {
    fn stop(&self) {
        match self {
            Mqtt::Embedded(endpoint) => endpoint.stop(),
            Mqtt::External(subscriber) => subscriber.stop(),
        }
    }
}

/// With `require_auth` on, the embedded endpoint accepts only gateway identities: with none yet, every gateway
/// would be refused (after an upgrade, silently), so the server does not start and says how to add one.
fn refuse_gateways_cut_off(config: &Config) -> anyhow::Result<()> {
    if config.mqtt.broker != Broker::Embedded || !config.mqtt.require_auth {
        return Ok(());
    }
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    if crate::gateways::any(&crate::db::open(&paths.journal(), config.storage.synchronous)?)? {
        return Ok(());
    }
    anyhow::bail!(
        "mqtt: require_auth is on and no gateway may sign in yet, so every gateway would be refused: add one with \
         `gatehouse gateway add NAME --devices T1,T2` (it prints the username and password to give the gateway), \
         or set require_auth = false under [mqtt] in the config"
    )
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let policies = crate::policy::all(&config);
        Self::build_with_policies(config, policies).await
    }

    /// [`Application::build`] with these policies instead of the program's own (the ingest benchmark measures
    /// ingestion with and without them).
    pub async fn build_with_policies(
        config: Config,
        policies: Vec<Box<dyn crate::policy::Policy>>,
    ) -> anyhow::Result<Application> {
        refuse_gateways_cut_off(&config)?;
        let http = TcpListener::bind(config.http.listen)
            .with_context(|| format!("http: cannot listen on {}", config.http.listen))?;
        let http_addr = http.local_addr()?;
        // Both listeners open before recovery: gateways' connections wait in the backlog, and the web answers
        // 503 "recovering: N of M devices" until the core is up.
        let mqtt_listener = match config.mqtt.broker {
            Broker::Embedded => Some(
                TcpListener::bind(config.mqtt.listen)
                    .with_context(|| format!("mqtt: cannot listen on {}", config.mqtt.listen))?,
            ),
            Broker::External { .. } => None,
        };
        let progress = Arc::new(crate::actors::RecoveryProgress::default());
        let recovering = crate::web::recovering::serve_while_recovering(&http, progress.clone())?;
        let started = Core::start_with(config, policies, progress).await;
        recovering.stop(true).await;
        let mut core = started?;
        let state = core.state();
        let mqtt = match (&state.config.mqtt.broker, mqtt_listener) {
            (Broker::Embedded, Some(listener)) => {
                let delivery = CommandDelivery::new(
                    state.commands.clone(),
                    state.notifier.alarm_topics.clone(),
                    state.paths.journal(),
                );
                let admission = Admission::new(&state.config.mqtt, state.paths.journal())?;
                Mqtt::Embedded(EmbeddedEndpoint::start_on(
                    listener,
                    state.ingestor.clone(),
                    delivery,
                    admission,
                )?)
            }
            (Broker::Embedded, None) => anyhow::bail!("mqtt: the embedded endpoint has no listener"),
            (Broker::External { .. }, _) => Mqtt::External(ExternalSubscriber::start(
                &state.config.mqtt,
                &state.config.device_ids(),
                state.ingestor.clone(),
                state.commands.clone(),
            )?),
        };
        match &mqtt {
            Mqtt::External(subscriber) => core.state.external_mqtt = Some(subscriber.status.clone()),
            Mqtt::Embedded(endpoint) => core.state.embedded_mqtt = Some(endpoint.stats.clone()),
        }
        let state = core.state();
        // Dead letters an admin asked to re-drive (from the command line, in another process) are picked up here.
        crate::dead_letters::spawn_redrive_loop(state.ingestor.clone(), state.paths.journal());
        // So are lock-outs and unlocks given on the command line.
        crate::requests::spawn_request_loop(state.registry.clone(), state.vault.clone(), state.paths.journal());
        // Maintenance schedules record their runs as they fall due (and one missed while down).
        if !state.config.clock.is_virtual() {
            crate::maintenance::scheduler::spawn(state.config.clone(), state.registry.clone(), state.paths.journal());
        }
        // Old events move to the archive as `[retention]` asks.
        crate::archive::spawn(state.config.clone());
        tracing::info!(devices = state.registry.len(), http = %http_addr, dir = %state.paths.dir.display(), "gatehouse started");
        Ok(Application {
            core,
            http,
            http_addr,
            mqtt,
        })
    }

    /// The address the embedded MQTT endpoint really listens on (`None` with an external broker).
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        match &self.mqtt {
            Mqtt::Embedded(endpoint) => Some(endpoint.addr),
            Mqtt::External(_) => None,
        }
    }

    /// The external subscriber's state (`None` in embedded mode).
    pub fn external_status(&self) -> Option<Arc<crate::mqtt::external::ExternalStatus>> {
        match &self.mqtt {
            Mqtt::Embedded(_) => None,
            Mqtt::External(subscriber) => Some(subscriber.status.clone()),
        }
    }

    /// The address the web server really listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn state(&self) -> &AppState {
        self.core.state()
    }

    /// Stops without serving (tests that drive the registry directly). The caller drops the actix system, which
    /// drops the actors and their writer handles, then joins the returned writer thread.
    pub fn stop(self) -> Stopped {
        self.mqtt.stop();
        self.core.stop()
    }

    /// Serves until `shutdown` resolves (or SIGINT/SIGTERM arrive), then stops accepting work. Everything
    /// acknowledged is already committed, so stopping never loses an acknowledged message.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<Stopped> {
        let server = crate::web::server(self.core.state().clone(), self.http)?;
        let handle = server.handle();
        tokio::select! {
            result = server => result.context("http server failed")?,
            _ = shutdown => handle.stop(true).await,
        }
        // Gateways re-send whatever was not yet acknowledged, so closing their connections loses nothing.
        self.mqtt.stop();
        tracing::info!("gatehouse stopped");
        Ok(self.core.stop())
    }
}

/// Read tables behind the archive (a lost or replaced `views.db`, a new projection after archival) cannot catch
/// up from the journal alone: they are rebuilt with the archived events read back in before the projectors start.
/// Without a usable archive the start stops and says why, rather than serving tables that silently miss history.
async fn catch_up_from_archives(config: &Config, paths: &StoragePaths) -> anyhow::Result<()> {
    let (config, paths) = (config.clone(), paths.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let archived =
            crate::archive::archived_up_to(crate::journal::JournalReader::open(&paths.journal())?.connection())?;
        if archived == 0 {
            return Ok(());
        }
        let mut views = crate::db::open(&paths.views(), config.storage.synchronous)?;
        crate::db::migrate_views(&mut views)?;
        let mut behind = Vec::new();
        for projection in crate::projection::all(&config.site.timezone) {
            if crate::projection::checkpoint(&views, projection.name())? < archived {
                behind.push(projection);
            }
        }
        drop(views);
        if behind.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = behind.iter().map(|p| p.name()).collect();
        tracing::warn!(projections = ?names, archived_up_to = archived,
            "read tables are behind the archive: rebuilding them with the archived events read back in");
        crate::projection::rebuild::rebuild(
            behind,
            &paths.journal(),
            &paths.views(),
            &config.retention.archive_dir,
            config.followers.on_error,
            |_, _| {},
        )
        .map(|_| ())
        .map_err(|e| e.context("read tables behind the archive cannot be rebuilt"))
    })
    .await?
}
