//! `gatehouse user list|disable` and `gatehouse token list|revoke`: who may use the pages and the API.

use super::Failure;
use crate::config::Config;
use crate::db::StoragePaths;
use anyhow::anyhow;

fn journal(config: &Config) -> anyhow::Result<rusqlite::Connection> {
    crate::auth::open(&StoragePaths::new(&config.storage.dir).journal())
}

fn local(config: &Config, micros: i64) -> String {
    crate::web::local_time(&config.site.timezone, micros)
}

pub fn user_list(config: &Config) -> Result<(), Failure> {
    let users = crate::auth::list_users(&journal(config)?)?;
    if users.is_empty() {
        eprintln!("gatehouse: no users yet (add one with `gatehouse user add NAME --role admin`)");
    }
    for user in users {
        let disabled = user
            .disabled_at
            .map_or_else(|| "-".to_owned(), |at| format!("disabled {}", local(config, at)));
        println!(
            "{}\t{}\t{}\t{disabled}",
            user.name,
            user.role,
            local(config, user.created_at)
        );
    }
    Ok(())
}

pub fn user_disable(config: &Config, name: &str) -> Result<(), Failure> {
    if crate::auth::disable_user(&journal(config)?, name)? {
        println!("disabled user {name}: they can no longer sign in and their sessions have ended");
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow!("user {name}: no such user")))
    }
}

pub fn token_list(config: &Config) -> Result<(), Failure> {
    for token in crate::auth::list_tokens(&journal(config)?)? {
        println!("{}\t{}\t{}", token.name, token.role, local(config, token.created_at));
    }
    Ok(())
}

pub fn token_revoke(config: &Config, name: &str) -> Result<(), Failure> {
    match crate::auth::revoke_tokens(&journal(config)?, name)? {
        0 => Err(Failure::Runtime(anyhow!("token {name}: no such token"))),
        1 => {
            println!("revoked token {name}");
            Ok(())
        }
        n => {
            println!("revoked the {n} tokens named {name}");
            Ok(())
        }
    }
}
