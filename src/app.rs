//! Starting and stopping the whole program for `gatehouse serve`: storage, journal writer, device actors,
//! projectors and the web server. `Application::build` binds every listener (port 0 works: tests read the real
//! port back), `run_until_stopped` serves until the shutdown future resolves or a signal arrives.

use crate::actors::{DeviceRegistry, start_devices};
use crate::config::Config;
use crate::db::StoragePaths;
use crate::ingest::Ingestor;
use crate::journal::{JournalWriter, Position, WriterThread};
use crate::projection::runner::{ProjectorHandle, start_projectors};
use anyhow::Context;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use tokio::sync::watch;

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub paths: StoragePaths,
    pub registry: DeviceRegistry,
    /// Turns device messages into events or dead letters (used by MQTT ingestion).
    pub ingestor: Ingestor,
    pub projectors: Vec<ProjectorHandle>,
    /// The journal head, as the writer announces it.
    pub committed: watch::Receiver<Position>,
}

/// A started Gatehouse. Must be built and run inside an actix system (`actix_web::rt::System`).
pub struct Application {
    state: AppState,
    http: TcpListener,
    http_addr: SocketAddr,
    writer_thread: WriterThread,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let paths = StoragePaths::new(&config.storage.dir);
        paths.prepare()?;
        let (writer, writer_thread) = JournalWriter::open(&paths.journal(), config.storage.synchronous)?;
        let registry = start_devices(&config, writer.clone(), &paths.journal()).await?;
        let projectors = start_projectors(
            crate::projection::all(&config.site.timezone),
            &paths.journal(),
            &paths.views(),
            writer.committed(),
        )?;
        let http = TcpListener::bind(config.http.listen)
            .with_context(|| format!("http: cannot listen on {}", config.http.listen))?;
        let http_addr = http.local_addr()?;
        tracing::info!(devices = registry.len(), http = %http_addr, dir = %paths.dir.display(), "gatehouse started");
        let ingestor = Ingestor::new(registry.clone(), writer.clone(), config.mqtt.topic_prefix.clone());
        let state = AppState {
            config: Arc::new(config),
            paths,
            registry,
            ingestor,
            projectors,
            committed: writer.committed(),
        };
        Ok(Application {
            state,
            http,
            http_addr,
            writer_thread,
        })
    }

    /// The address the web server really listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops without serving (tests that drive the registry directly). The caller drops the actix system, which
    /// drops the actors and their writer handles, then joins the returned writer thread.
    pub fn stop(self) -> WriterThread {
        self.writer_thread
    }

    /// Serves until `shutdown` resolves (or SIGINT/SIGTERM arrive), then stops accepting work. Everything
    /// acknowledged is already committed, so stopping never loses an acknowledged message.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<WriterThread> {
        let server = crate::web::server(self.state.clone(), self.http)?;
        let handle = server.handle();
        tokio::select! {
            result = server => result.context("http server failed")?,
            _ = shutdown => handle.stop(true).await,
        }
        tracing::info!("gatehouse stopped");
        Ok(self.writer_thread)
    }
}
