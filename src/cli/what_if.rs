//! `gatehouse what-if --until TIME [--inject FILE] [--listen ADDR]`: runs a scratch copy of the site as the
//! journal had it at TIME with the messages in FILE fed in, then prints its figures beside the real ones, or
//! serves its pages on ADDR until Ctrl-C. The live data is only read.

use super::Failure;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::what_if::{self, Scratch};
use anyhow::{Context, anyhow};
use std::net::SocketAddr;
use std::path::Path;

pub fn run(config: Config, until: &str, inject: Option<&Path>, listen: Option<SocketAddr>) -> Result<(), Failure> {
    let tz = config.site.timezone.clone();
    let until = crate::history::parse_instant(until, &tz).map_err(|e| Failure::Usage(e.context("--until")))?;
    let lines = match inject {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
            what_if::read_injections(&text, &config.mqtt.topic_prefix)
                .map_err(|e| Failure::Usage(e.context(path.display().to_string())))?
        }
    };
    if let Some(early) = lines.iter().find(|l| l.at < until) {
        return Err(Failure::Usage(anyhow!(
            "--inject: a message arrives at {}, before --until {until}: injected messages come after the instant \
             the copy starts from",
            early.at
        )));
    }
    let live = StoragePaths::new(&config.storage.dir);
    let scratch = Scratch::new()?;
    let copy = what_if::scratch_config(&config, &scratch.0, listen, until);
    let copied = what_if::copy_journal(&live, &StoragePaths::new(&copy.storage.dir), until)?;
    println!("what-if: the journal as of {until}: {copied} events, in a scratch copy the live data never sees");
    let copy_views = StoragePaths::new(&copy.storage.dir).views();
    let from = until.to_zoned_datetime(tz.clone()).date().to_string();
    let to = lines
        .last()
        .map_or(until, |l| l.at)
        .to_zoned_datetime(tz.clone())
        .date()
        .to_string();
    let system = actix_web::rt::System::new();
    let stopped = system.block_on(async move {
        let app = crate::app::Application::build(copy).await?;
        let fed = what_if::feed(&app, until, &lines).await?;
        what_if::settle(&app).await?;
        println!(
            "what-if: fed {} messages: {} events, {} duplicates, {} dead letters",
            lines.len(),
            fed.events,
            fed.duplicates,
            fed.dead_letters.len()
        );
        for (line, reason) in &fed.dead_letters {
            println!("  message {line} (in arrival order): dead letter: {reason}");
        }
        if listen.is_some() {
            println!(
                "what-if: serving the copy on http://{}/ (Ctrl-C stops it; the copy is then removed)",
                app.http_addr()
            );
            return app
                .run_until_stopped(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
        }
        Ok(app.stop())
    })?;
    drop(system);
    stopped.join();
    if listen.is_none() {
        let figures = what_if::figures(&live.views(), &copy_views, &from, &to)?;
        println!("figures for {from} to {to} (site time):");
        println!("{:<36}{:>12}{:>12}{:>12}", "", "real", "what-if", "difference");
        for f in figures {
            println!(
                "{:<36}{:>12}{:>12}{:>+12}",
                f.name,
                f.real,
                f.what_if,
                f.what_if - f.real
            );
        }
    }
    drop(scratch);
    Ok(())
}
