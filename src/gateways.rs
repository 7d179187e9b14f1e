//! Gateway identities (`gatehouse gateway add|list|remove`): who may sign in to the embedded MQTT endpoint and
//! for which devices it may report (its topic ACL). Each has a generated MQTT password and an HTTP token, shown
//! once; only their SHA-256 hashes are kept (they are long random secrets, so a fast hash is enough and signing
//! in costs no memory-hungry password hashing).

use crate::auth::{constant_time_eq, random_secret, sha256_hex};
use crate::domain::DeviceId;
use anyhow::{Context, anyhow};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeSet;

/// A gateway allowed to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub name: String,
    /// The devices it may publish for and whose command topics it may subscribe to.
    pub devices: BTreeSet<DeviceId>,
    /// May subscribe to `{prefix}/alarms/#`.
    pub alarms: bool,
    pub created_at: i64,
}

impl Gateway {
    pub fn may_report_for(&self, device: &str) -> bool {
        self.devices.contains(device)
    }
}

/// What `gateway add` prints, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub mqtt_username: String,
    pub mqtt_password: String,
    pub http_token: String,
}

/// A gateway's name: what it signs in with and what its events' actor says (`gateway:NAME`): 1 to 64 letters,
/// digits, '-', '_' and '.'.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "gateway name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Creates a gateway identity (or gives an existing one new devices and new secrets) and returns its secrets.
pub fn add(conn: &Connection, name: &str, devices: &BTreeSet<DeviceId>, alarms: bool) -> anyhow::Result<Credentials> {
    validate_name(name)?;
    if devices.is_empty() && !alarms {
        return Err(anyhow!(
            "gateway {name}: give it --devices (and/or --alarms): it could do nothing"
        ));
    }
    let password = random_secret("gwp_");
    let token = random_secret("gwt_");
    let devices_json = serde_json::to_string(&devices.iter().map(DeviceId::as_str).collect::<Vec<_>>())?;
    conn.execute(
        "INSERT INTO gateways (name, password_hash, token_hash, devices, alarms, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, token_hash = excluded.token_hash,
             devices = excluded.devices, alarms = excluded.alarms",
        params![
            name,
            sha256_hex(&password),
            sha256_hex(&token),
            devices_json,
            alarms,
            jiff::Timestamp::now().as_microsecond()
        ],
    )
    .context("journal.db: cannot store the gateway")?;
    Ok(Credentials {
        mqtt_username: name.to_owned(),
        mqtt_password: password,
        http_token: token,
    })
}

/// Removes a gateway identity; `false` when there was none by that name.
pub fn remove(conn: &Connection, name: &str) -> anyhow::Result<bool> {
    Ok(conn.execute("DELETE FROM gateways WHERE name = ?1", [name])? > 0)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, bool, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn gateway((name, devices, alarms, created_at): (String, String, bool, i64)) -> anyhow::Result<Gateway> {
    let ids: Vec<String> =
        serde_json::from_str(&devices).with_context(|| format!("gateway {name}: its device list is unreadable"))?;
    // A device id stored by an older program that this one would refuse is left out rather than trusted.
    let devices = ids.iter().filter_map(|id| DeviceId::parse(id).ok()).collect();
    Ok(Gateway {
        name,
        devices,
        alarms,
        created_at,
    })
}

/// Every gateway identity, by name.
pub fn list(conn: &Connection) -> anyhow::Result<Vec<Gateway>> {
    let mut statement = conn.prepare("SELECT name, devices, alarms, created_at FROM gateways ORDER BY name")?;
    let rows = statement.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(gateway).collect()
}

/// Whether any gateway may sign in.
pub fn any(conn: &Connection) -> anyhow::Result<bool> {
    Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM gateways)", [], |r| r.get(0))?)
}

/// The gateway these MQTT credentials belong to, if they do.
pub fn sign_in(conn: &Connection, name: &str, password: &str) -> anyhow::Result<Option<Gateway>> {
    let found: Option<(String, (String, String, bool, i64))> = conn
        .query_row(
            "SELECT password_hash, name, devices, alarms, created_at FROM gateways WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))),
        )
        .optional()?;
    match found {
        Some((hash, rest)) if constant_time_eq(&hash, &sha256_hex(password)) => Ok(Some(gateway(rest)?)),
        _ => Ok(None),
    }
}

/// The gateway an HTTP ingest token belongs to, if it does.
pub fn by_token(conn: &Connection, token: &str) -> anyhow::Result<Option<Gateway>> {
    let found = conn
        .query_row(
            "SELECT name, devices, alarms, created_at FROM gateways WHERE token_hash = ?1",
            [sha256_hex(token)],
            row,
        )
        .optional()?;
    found.map(gateway).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate_journal(&mut conn).unwrap();
        conn
    }

    fn devices(ids: &[&str]) -> BTreeSet<DeviceId> {
        ids.iter().map(|id| DeviceId::parse(id).unwrap()).collect()
    }

    #[test]
    fn a_gateway_signs_in_with_its_own_secrets_only_and_they_are_kept_hashed() {
        let conn = conn();
        let credentials = add(&conn, "pi-3", &devices(&["T1", "T2"]), false).unwrap();
        assert_eq!(credentials.mqtt_username, "pi-3");
        let gateway = sign_in(&conn, "pi-3", &credentials.mqtt_password).unwrap().unwrap();
        assert!(gateway.may_report_for("T1") && !gateway.may_report_for("T3"));
        assert_eq!(sign_in(&conn, "pi-3", "wrong").unwrap(), None);
        assert_eq!(sign_in(&conn, "nobody", &credentials.mqtt_password).unwrap(), None);
        assert_eq!(by_token(&conn, &credentials.http_token).unwrap().unwrap().name, "pi-3");
        let stored: String = conn
            .query_row("SELECT password_hash || token_hash FROM gateways", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains(&credentials.mqtt_password) && !stored.contains(&credentials.http_token));
        // Adding it again replaces its secrets: the old password no longer works.
        let again = add(&conn, "pi-3", &devices(&["T1"]), true).unwrap();
        assert_eq!(sign_in(&conn, "pi-3", &credentials.mqtt_password).unwrap(), None);
        assert!(sign_in(&conn, "pi-3", &again.mqtt_password).unwrap().unwrap().alarms);
        assert!(remove(&conn, "pi-3").unwrap());
        assert!(!any(&conn).unwrap());
    }

    #[test]
    fn names_and_empty_identities_are_refused() {
        let conn = conn();
        assert!(add(&conn, "pi 3", &devices(&["T1"]), false).is_err());
        assert!(add(&conn, "pi-3", &BTreeSet::new(), false).is_err());
        assert!(add(&conn, "watcher", &BTreeSet::new(), true).is_ok());
    }
}
