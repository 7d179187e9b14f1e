//! Who may see what: web users (argon2id password hashes), API tokens (shown once, stored as SHA-256) and sign-in
//! sessions, all in `journal.db`. Pure storage and checks; the HTTP side (cookies, the sign-in form, the guard
//! in front of every page) lives in `web::auth`.
//!
//! These rows are not events and are written by whichever process needs to (the CLI's `user add`, the server's
//! sign-in) in short transactions; the journal writer's busy timeout absorbs the rare overlap.

use anyhow::{Context, anyhow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// How long a sign-in lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// What a user or token may do: managers read everything; admins also rebuild projections and handle dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Manager,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "manager" => Ok(Role::Manager),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: expected manager or admin")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// The session's CSRF token; `None` for API tokens, which may only read.
    pub csrf: Option<String>,
}

/// A user name: 1 to 64 printable characters without spaces.
pub fn validate_user_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(anyhow!("user name {name:?} must be 1 to 64 characters without spaces"));
    }
    Ok(())
}

fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A long random secret, URL-safe: 32 random bytes in hex behind a recognisable prefix.
pub(crate) fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A fresh random salt for a password hash.
fn new_salt() -> anyhow::Result<SaltString> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    SaltString::encode_b64(&bytes).map_err(|e| anyhow!("cannot encode a salt: {e}"))
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Opens `journal.db` (creating and migrating it if needed) for account work.
pub fn open(journal: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = journal.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the storage directory", dir.display()))?;
    }
    let mut conn = crate::db::open(journal, crate::config::Synchronous::Full)?;
    crate::db::migrate_journal(&mut conn)?;
    Ok(conn)
}

/// Creates a user, or updates the role and password of an existing one. Returns true when the user is new.
pub fn add_user(conn: &Connection, name: &str, role: Role, password: &str) -> anyhow::Result<bool> {
    validate_user_name(name)?;
    if password.chars().count() < 8 {
        return Err(anyhow!("password for {name:?} is too short: use at least 8 characters"));
    }
    let salt = new_salt()?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?
        .to_string();
    let now = now_micros();
    let existed: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)", [name], |r| {
        r.get(0)
    })?;
    conn.execute(
        "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,
                                          updated_at = excluded.updated_at, disabled_at = NULL",
        params![name, role.as_str(), hash, now],
    )?;
    if existed {
        // A new password ends every sign-in made with the old one.
        conn.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
    }
    Ok(!existed)
}

/// A user as `user list` and `/admin/users` show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

pub fn list_users(conn: &Connection) -> anyhow::Result<Vec<UserRow>> {
    let mut statement = conn.prepare("SELECT name, role, created_at, disabled_at FROM users ORDER BY name")?;
    let rows = statement.query_map([], |r| {
        Ok(UserRow {
            name: r.get(0)?,
            role: r.get(1)?,
            created_at: r.get(2)?,
            disabled_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Disables a user: they can no longer sign in and every session of theirs ends. `false`: no such user.
pub fn disable_user(conn: &Connection, name: &str) -> anyhow::Result<bool> {
    let changed = conn.execute(
        "UPDATE users SET disabled_at = COALESCE(disabled_at, ?2) WHERE name = ?1",
        params![name, now_micros()],
    )?;
    conn.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
    Ok(changed > 0)
}

/// An API token as `token list` shows it (never the token itself: only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

pub fn list_tokens(conn: &Connection) -> anyhow::Result<Vec<TokenRow>> {
    let mut statement = conn.prepare("SELECT name, role, created_at FROM api_tokens ORDER BY name, id")?;
    let rows = statement.query_map([], |r| {
        Ok(TokenRow {
            name: r.get(0)?,
            role: r.get(1)?,
            created_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes every token of that name; how many there were.
pub fn revoke_tokens(conn: &Connection, name: &str) -> anyhow::Result<usize> {
    Ok(conn.execute("DELETE FROM api_tokens WHERE name = ?1", [name])?)
}

/// Whether anyone can sign in yet.
pub fn has_users(conn: &Connection) -> anyhow::Result<bool> {
    Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))?)
}

/// A fresh password people can type: 16 lowercase letters and digits.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Checks a password; `Ok(None)` for an unknown user or a wrong password (callers must not tell which).
pub fn verify_password(conn: &Connection, name: &str, password: &str) -> anyhow::Result<Option<Role>> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT role, password_hash FROM users WHERE name = ?1 AND disabled_at IS NULL",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((role, stored)) = row else {
        // Spend the same time as a real check, so response times do not reveal which names exist.
        if let Ok(salt) = new_salt() {
            let _ = Argon2::default().hash_password(password.as_bytes(), &salt);
        }
        return Ok(None);
    };
    let parsed = PasswordHash::new(&stored).map_err(|e| anyhow!("stored hash for {name:?} is unreadable: {e}"))?;
    if Argon2::default().verify_password(password.as_bytes(), &parsed).is_err() {
        return Ok(None);
    }
    Ok(Some(role.parse().map_err(|e: String| anyhow!(e))?))
}

/// Creates an API token and returns it; only its hash is kept, so this is the one time it can be shown.
pub fn create_token(conn: &Connection, name: &str, role: Role) -> anyhow::Result<String> {
    validate_user_name(name).map_err(|_| anyhow!("token name {name:?} must be 1 to 64 characters without spaces"))?;
    let token = random_secret("gh_");
    conn.execute(
        "INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, role.as_str(), sha256_hex(&token), now_micros()],
    )?;
    Ok(token)
}

/// The identity behind an API token.
pub fn check_token(conn: &Connection, token: &str) -> anyhow::Result<Option<Identity>> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT name, role FROM api_tokens WHERE token_hash = ?1",
            [sha256_hex(token)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(name, role)| {
        Some(Identity {
            name,
            role: role.parse().ok()?,
            csrf: None,
        })
    }))
}

/// Starts a session for a signed-in user; returns the cookie value (only its hash is stored).
pub fn create_session(conn: &Connection, user: &str) -> anyhow::Result<String> {
    let id = random_secret("");
    let csrf = random_secret("");
    let now = now_micros();
    let expires = now + SESSION_LIFETIME.as_micros() as i64;
    conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now])?;
    conn.execute(
        "INSERT INTO sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![sha256_hex(&id), user, csrf, now, expires],
    )?;
    Ok(id)
}

/// The identity behind a session cookie, while the session lasts.
pub fn check_session(conn: &Connection, id: &str) -> anyhow::Result<Option<Identity>> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT s.user_name, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name
             WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND u.disabled_at IS NULL",
            params![sha256_hex(id), now_micros()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(name, role, csrf)| {
        Some(Identity {
            name,
            role: role.parse().ok()?,
            csrf: Some(csrf),
        })
    }))
}

/// Ends a session (sign-out).
pub fn end_session(conn: &Connection, id: &str) -> anyhow::Result<()> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [sha256_hex(id)])?;
    Ok(())
}

/// Whether a submitted form's CSRF token is the session's.
pub fn csrf_matches(identity: &Identity, submitted: &str) -> bool {
    identity
        .csrf
        .as_deref()
        .is_some_and(|expected| constant_time_eq(expected, submitted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("journal.db")).unwrap();
        (dir, conn)
    }

    #[test]
    fn a_user_signs_in_with_the_right_password_only() {
        let (_dir, conn) = journal();
        assert!(add_user(&conn, "ana", Role::Admin, "correct horse").unwrap());
        assert_eq!(
            verify_password(&conn, "ana", "correct horse").unwrap(),
            Some(Role::Admin)
        );
        assert_eq!(verify_password(&conn, "ana", "wrong horse!").unwrap(), None);
        assert_eq!(verify_password(&conn, "bob", "correct horse").unwrap(), None);
        let stored: String = conn
            .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
    }

    #[test]
    fn changing_a_password_ends_the_users_sessions() {
        let (_dir, conn) = journal();
        add_user(&conn, "ana", Role::Manager, "first password").unwrap();
        let session = create_session(&conn, "ana").unwrap();
        assert!(check_session(&conn, &session).unwrap().is_some());
        assert!(!add_user(&conn, "ana", Role::Admin, "second password").unwrap());
        assert_eq!(check_session(&conn, &session).unwrap(), None);
    }

    #[test]
    fn short_passwords_and_odd_names_are_refused() {
        let (_dir, conn) = journal();
        let short = add_user(&conn, "ana", Role::Manager, "short").unwrap_err();
        assert_eq!(
            short.to_string(),
            "password for \"ana\" is too short: use at least 8 characters"
        );
        let spaced = add_user(&conn, "a b", Role::Manager, "long enough").unwrap_err();
        assert_eq!(
            spaced.to_string(),
            "user name \"a b\" must be 1 to 64 characters without spaces"
        );
    }

    #[test]
    fn tokens_are_stored_only_as_hashes_and_identify_their_role() {
        let (_dir, conn) = journal();
        let token = create_token(&conn, "grafana", Role::Manager).unwrap();
        assert!(token.starts_with("gh_") && token.len() == 67, "{token}");
        let stored: String = conn
            .query_row("SELECT token_hash FROM api_tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, token);
        let identity = check_token(&conn, &token).unwrap().unwrap();
        assert_eq!(
            (identity.name.as_str(), identity.role, identity.csrf),
            ("grafana", Role::Manager, None)
        );
        assert_eq!(check_token(&conn, "gh_nope").unwrap(), None);
    }

    #[test]
    fn sessions_carry_a_csrf_token_and_end_on_sign_out() {
        let (_dir, conn) = journal();
        add_user(&conn, "ana", Role::Manager, "long enough").unwrap();
        let session = create_session(&conn, "ana").unwrap();
        let identity = check_session(&conn, &session).unwrap().unwrap();
        let csrf = identity.csrf.clone().unwrap();
        assert!(csrf_matches(&identity, &csrf));
        assert!(!csrf_matches(&identity, "forged"));
        end_session(&conn, &session).unwrap();
        assert_eq!(check_session(&conn, &session).unwrap(), None);
    }
}
