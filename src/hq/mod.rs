//! `gatehouse hq`: the network view for a company's sites (SPEC §6). A durable consumer of every site's forwarded
//! events (`consumer`) keeps `hq.db` (`store`), and the network pages (`pages`) show it with the same sign-in,
//! roles and tokens as a site (accounts live in the HQ's own `journal.db`, so `gatehouse -c hq.toml user add`
//! works as on a site).

mod consumer;
mod pages;
pub mod store;

pub use consumer::{ConsumerProgress, ConsumerStatus, run as consume};

use crate::config::Config;
use crate::db::{StoragePaths, lock_data_dir};
use crate::web::pool::ReadPool;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use std::sync::Arc;

/// The file the network view keeps in its storage directory.
pub const HQ_FILE: &str = "hq.db";

/// What the network pages share.
#[derive(Clone)]
pub struct HqState {
    pub reader: ReadPool,
    pub consumer: Arc<ConsumerStatus>,
}

/// Runs the network view until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let hq = config
        .hq
        .clone()
        .context("this config has no [hq] table: `gatehouse hq` needs one (see config.toml)")?;
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    let _lock = lock_data_dir(&paths)?;
    let hq_db = config.storage.dir.join(HQ_FILE);
    {
        let path = hq_db.clone();
        tokio::task::spawn_blocking(move || store::open(&path)).await??;
    }
    let status = Arc::new(ConsumerStatus::default());
    tokio::spawn(consumer::run(hq, hq_db.clone(), status.clone()));
    let state = HqState {
        reader: ReadPool::new(hq_db),
        consumer: status,
    };
    let accounts = web::Data::new(crate::web::auth::Accounts {
        site_name: "Gatehouse network".into(),
        journal: paths.journal(),
        reader: ReadPool::new(paths.journal()),
    });
    let data = web::Data::new(state);
    let throttle = web::Data::new(crate::web::auth::LoginThrottle::default());
    let listener = std::net::TcpListener::bind(config.http.listen)
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let address = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(accounts.clone())
            .app_data(throttle.clone())
            .wrap(actix_web::middleware::from_fn(crate::web::auth::guard))
            .wrap(actix_web::middleware::Compress::default())
            .wrap(actix_web::middleware::from_fn(crate::web::hardening::harden))
            .configure(crate::web::auth::routes)
            .configure(pages::routes)
            .route("/static/style.css", web::get().to(crate::web::style_css))
            .route("/static/live.js", web::get().to(crate::web::live_js))
    })
    .workers(2)
    .listen(listener)?
    .run();
    println!("gatehouse: network view on http://{address}/ (Ctrl-C to stop)");
    server.await?;
    Ok(())
}
