//! `gatehouse gateway add|list|remove`: the identities gateways sign in with. `add` prints the secrets once, as
//! `key=value` lines a gateway's setup script can read.

use super::Failure;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::domain::DeviceId;
use anyhow::anyhow;
use std::collections::BTreeSet;

fn journal(config: &Config) -> anyhow::Result<rusqlite::Connection> {
    crate::auth::open(&StoragePaths::new(&config.storage.dir).journal())
}

/// The devices named on the command line, each one configured.
fn devices(config: &Config, list: &str) -> Result<BTreeSet<DeviceId>, Failure> {
    let known: BTreeSet<DeviceId> = config.device_ids().into_iter().map(|(id, _)| id).collect();
    let mut devices = BTreeSet::new();
    for id in list.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let device = DeviceId::parse(id).map_err(|e| Failure::Usage(anyhow!("--devices: {e}")))?;
        if !known.contains(&device) {
            return Err(Failure::Usage(anyhow!("--devices: no device {id:?} in the config")));
        }
        devices.insert(device);
    }
    Ok(devices)
}

pub fn add(config: &Config, name: &str, device_list: &str, alarms: bool) -> Result<(), Failure> {
    let devices = devices(config, device_list)?;
    let credentials = crate::gateways::add(&journal(config)?, name, &devices, alarms).map_err(Failure::Usage)?;
    println!("mqtt_username={}", credentials.mqtt_username);
    println!("mqtt_password={}", credentials.mqtt_password);
    println!("http_token={}", credentials.http_token);
    eprintln!(
        "gatehouse: gateway {name} may report for {} device(s){}; its password and token are shown only this once \
         (adding it again gives it new ones)",
        devices.len(),
        if alarms { " and read alarms" } else { "" }
    );
    Ok(())
}

pub fn list(config: &Config) -> Result<(), Failure> {
    let gateways = crate::gateways::list(&journal(config)?)?;
    if gateways.is_empty() {
        eprintln!("gatehouse: no gateway identities yet (add one with `gatehouse gateway add NAME --devices T1,T2`)");
    }
    for gateway in gateways {
        let devices: Vec<&str> = gateway.devices.iter().map(DeviceId::as_str).collect();
        println!(
            "{}\t{}\t{}\t{}",
            gateway.name,
            if devices.is_empty() {
                "-".to_owned()
            } else {
                devices.join(",")
            },
            if gateway.alarms { "alarms" } else { "-" },
            crate::web::local_time(&config.site.timezone, gateway.created_at)
        );
    }
    Ok(())
}

pub fn remove(config: &Config, name: &str) -> Result<(), Failure> {
    if crate::gateways::remove(&journal(config)?, name)? {
        println!("removed gateway {name}: it can no longer sign in (connected ones are refused when they reconnect)");
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow!("gateway {name}: no such gateway")))
    }
}
