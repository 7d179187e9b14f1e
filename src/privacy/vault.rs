//! The subject vault: each person's pseudonym and own key (`subject_vault` in `journal.db`). Sealing an identifier
//! finds or creates the person's row and encrypts the identifier under their key (ChaCha20-Poly1305, ring);
//! revealing a pseudonym reads the identifier back for a page, a CSV, a notification. Forgetting deletes the row
//! (`secure_delete` on): from then on the pseudonym reveals as "forgotten" and no sealed copy can be opened.
//!
//! Rows are cached in memory once read. Forgetting goes through the process that serves (or the only one running),
//! so its cache is the one that drops the person; another process's cache lives no longer than its command.

use crate::domain::{Pseudonym, Subject, SubjectId};
use crate::pseudonym::PseudonymKey;
use anyhow::Context;
use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// What a pseudonym reads as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revealed {
    Known(SubjectId),
    /// The person was forgotten (or the pseudonym was never this site's).
    Forgotten,
}

impl Revealed {
    pub const FORGOTTEN: &'static str = "forgotten";
}

impl fmt::Display for Revealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revealed::Known(subject) => f.write_str(subject.as_str()),
            Revealed::Forgotten => f.write_str(Self::FORGOTTEN),
        }
    }
}

/// One person's row, opened.
#[derive(Clone)]
struct Person {
    pseudonym: Pseudonym,
    key: [u8; 32],
    subject: SubjectId,
}

#[derive(Default)]
struct People {
    /// By the keyed hash of the identifier (the `lookup` column).
    by_lookup: HashMap<[u8; 32], Person>,
    by_pseudonym: HashMap<Pseudonym, Person>,
    /// Pseudonyms looked for and not found: forgotten ones never come back.
    gone: HashSet<Pseudonym>,
}

/// How a new person's pseudonym is chosen.
#[derive(Clone, Copy)]
enum NewPseudonym {
    /// 128 random bits: nothing links it to the identifier once the row is gone.
    Random,
    /// The keyed hash people seen before sealing already have in stream names and forwarded data.
    Legacy,
}

/// The site's subject vault; cheap to clone (one connection and cache shared).
#[derive(Clone)]
pub struct SubjectVault {
    inner: Arc<Inner>,
}

struct Inner {
    db: Mutex<Connection>,
    site_key: PseudonymKey,
    people: RwLock<People>,
    /// People forgotten by this process (see [`SubjectVault::generation`]).
    forgotten: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for SubjectVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectVault(..)")
    }
}

fn lock_error<T>(_: T) -> anyhow::Error {
    anyhow::anyhow!("the subject vault's lock was poisoned by a panic")
}

impl SubjectVault {
    /// The vault of the journal at `path` (migrated), on a connection of its own.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = crate::db::open(path, crate::config::Synchronous::Full)?;
        Self::on(conn)
    }

    /// The vault on this connection to a migrated journal.
    pub fn on(conn: Connection) -> anyhow::Result<Self> {
        // Deleting a row overwrites its bytes, so a forgotten person's key does not linger in a free page.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let site_key = PseudonymKey::load_or_create(&conn)?;
        let vault = Self {
            inner: Arc::new(Inner {
                db: Mutex::new(conn),
                site_key,
                people: RwLock::new(People::default()),
                forgotten: Default::default(),
            }),
        };
        vault.load_everyone()?;
        Ok(vault)
    }

    /// Reads every row into the cache once, so pages reveal people from memory (a row another process adds later
    /// is read on its first use).
    fn load_everyone(&self) -> anyhow::Result<()> {
        let db = self.inner.db.lock().map_err(lock_error)?;
        let rows: Vec<StoredRow> = db
            .prepare("SELECT pseudonym, key, sealed FROM subject_vault")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()
            .context("journal.db: cannot read the subject vault")?;
        drop(db);
        for row in rows {
            let person = open_row(row)?;
            let lookup = self.lookup_of(&person.subject);
            self.remember(lookup, person);
        }
        Ok(())
    }

    /// The identifier sealed under its person's key; the person's row is made the first time they are seen.
    pub fn seal(&self, subject: &SubjectId) -> anyhow::Result<Subject> {
        self.seal_creating(subject, NewPseudonym::Random)
    }

    /// [`SubjectVault::seal`] for a person already in memory; `None` when sealing would need the database (a person
    /// seen for the first time), which async callers then do off the executor.
    pub fn seal_cached(&self, subject: &SubjectId) -> Option<Subject> {
        let lookup = self.lookup_of(subject);
        let person = self.inner.people.read().ok()?.by_lookup.get(&lookup).cloned()?;
        seal_with(&person.key, &person.pseudonym, subject).ok()
    }

    /// Sealing for the one-time re-encryption of events written in clear: a person new to the vault keeps the
    /// keyed-hash pseudonym their streams and forwarded events already use.
    pub fn seal_legacy(&self, subject: &SubjectId) -> anyhow::Result<Subject> {
        self.seal_creating(subject, NewPseudonym::Legacy)
    }

    fn seal_creating(&self, subject: &SubjectId, how: NewPseudonym) -> anyhow::Result<Subject> {
        let person = self
            .person(subject, Some(how))?
            .context("the subject vault lost a row it had just written")?;
        seal_with(&person.key, &person.pseudonym, subject)
    }

    /// The person's pseudonym if the vault knows them (never creates one).
    pub fn find(&self, subject: &SubjectId) -> anyhow::Result<Option<Pseudonym>> {
        Ok(self.person(subject, None)?.map(|p| p.pseudonym))
    }

    /// What a pseudonym reads as now.
    pub fn reveal(&self, pseudonym: &Pseudonym) -> Revealed {
        match self.by_pseudonym(pseudonym) {
            Ok(Some(person)) => Revealed::Known(person.subject),
            Ok(None) => Revealed::Forgotten,
            Err(e) => {
                // A page must still render; it shows nobody rather than failing, and the log says why.
                tracing::error!(error = %format!("{e:#}"), "subject vault: cannot read a person's row");
                Revealed::Forgotten
            }
        }
    }

    /// `text` with every pseudonym in it (`ps-` and 32 hex digits) replaced by what it reads as: alarm sources and
    /// details, event JSON, notification texts.
    pub fn reveal_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(Pseudonym::PREFIX) {
            out.push_str(&rest[..at]);
            let candidate = rest.get(at..at + Pseudonym::PREFIX.len() + 32).unwrap_or("");
            match Pseudonym::parse(candidate) {
                Ok(pseudonym) => {
                    out.push_str(&self.reveal(&pseudonym).to_string());
                    rest = &rest[at + candidate.len()..];
                }
                Err(_) => {
                    out.push_str(Pseudonym::PREFIX);
                    rest = &rest[at + Pseudonym::PREFIX.len()..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Every string in a JSON document revealed (`gatehouse events`, the events page).
    pub fn reveal_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) if text.contains(Pseudonym::PREFIX) => *text = self.reveal_text(text),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.reveal_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.reveal_json(v)),
            _ => {}
        }
    }

    /// Opens a sealed copy (an event's) with its person's key: `None` once they are forgotten.
    pub fn open_sealed(&self, subject: &Subject) -> Option<SubjectId> {
        let person = self.by_pseudonym(&subject.pseudonym).ok().flatten()?;
        open_with(&person.key, &subject.pseudonym, &subject.sealed)
    }

    /// Deletes the person's row: their pseudonym, if they were known.
    pub fn forget(&self, subject: &SubjectId) -> anyhow::Result<Option<Pseudonym>> {
        let Some(pseudonym) = self.find(subject)? else {
            return Ok(None);
        };
        self.forget_pseudonym(&pseudonym)?;
        Ok(Some(pseudonym))
    }

    /// Deletes the row of the person with this pseudonym (its key with it); whether there was one. The cache
    /// forgets them under the same lock, so a concurrent read cannot put them back.
    pub fn forget_pseudonym(&self, pseudonym: &Pseudonym) -> anyhow::Result<bool> {
        let db = self.inner.db.lock().map_err(lock_error)?;
        let deleted = db
            .execute("DELETE FROM subject_vault WHERE pseudonym = ?1", [pseudonym.as_str()])
            .context("journal.db: cannot delete a person's row from the subject vault")?;
        self.evict(pseudonym)?;
        drop(db);
        Ok(deleted > 0)
    }

    /// Forgets what this process remembers of a person another process forgot (it saw the erasure event).
    pub fn mark_forgotten(&self, pseudonym: &Pseudonym) {
        if let Err(error) = self.evict(pseudonym) {
            tracing::error!(error = %format!("{error:#}"), "subject vault: cannot forget a cached person");
        }
    }

    /// Takes a person out of the cache for good (a later read cannot put them back) and counts the erasure.
    fn evict(&self, pseudonym: &Pseudonym) -> anyhow::Result<()> {
        let mut people = self.inner.people.write().map_err(lock_error)?;
        people.by_pseudonym.remove(pseudonym);
        people.by_lookup.retain(|_, p| p.pseudonym != *pseudonym);
        people.gone.insert(pseudonym.clone());
        self.inner.forgotten.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// How many people this process has forgotten since it started: pages that cache what they show (ETags)
    /// include it, so a forgotten person never lingers in a browser's copy.
    pub fn generation(&self) -> u64 {
        self.inner.forgotten.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` on the vault's own connection (the one with `secure_delete` on).
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let db = self.inner.db.lock().map_err(lock_error)?;
        f(&db)
    }

    #[cfg(test)]
    pub(crate) fn inner_site_key_pseudonym(&self, subject: &SubjectId) -> Pseudonym {
        self.inner.site_key.pseudonym(subject)
    }

    fn lookup_of(&self, subject: &SubjectId) -> [u8; 32] {
        self.inner.site_key.digest(subject)
    }

    fn person(&self, subject: &SubjectId, create: Option<NewPseudonym>) -> anyhow::Result<Option<Person>> {
        let lookup = self.lookup_of(subject);
        if let Some(person) = self.inner.people.read().map_err(lock_error)?.by_lookup.get(&lookup) {
            return Ok(Some(person.clone()));
        }
        let db = self.inner.db.lock().map_err(lock_error)?;
        let mut row = read_row(&db, "lookup", &lookup.as_slice())?;
        if row.is_none()
            && let Some(how) = create
        {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let pseudonym = match how {
                NewPseudonym::Random => {
                    let mut digest = [0u8; 16];
                    rand::rng().fill_bytes(&mut digest);
                    Pseudonym::from_digest(&digest)
                }
                NewPseudonym::Legacy => self.inner.site_key.pseudonym(subject),
            };
            let sealed = seal_with(&key, &pseudonym, subject)?;
            // Another process sealing the same person at once: the first row wins and both read it.
            db.execute(
                "INSERT OR IGNORE INTO subject_vault (pseudonym, lookup, key, sealed, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    pseudonym.as_str(),
                    &lookup[..],
                    &key[..],
                    sealed.sealed,
                    jiff::Timestamp::now().as_microsecond()
                ],
            )
            .context("journal.db: cannot add a person to the subject vault")?;
            row = read_row(&db, "lookup", &lookup.as_slice())?;
        }
        drop(db);
        Ok(row.map(|person| self.remember(lookup, person)))
    }

    fn by_pseudonym(&self, pseudonym: &Pseudonym) -> anyhow::Result<Option<Person>> {
        {
            let people = self.inner.people.read().map_err(lock_error)?;
            if let Some(person) = people.by_pseudonym.get(pseudonym) {
                return Ok(Some(person.clone()));
            }
            if people.gone.contains(pseudonym) {
                return Ok(None);
            }
        }
        let db = self.inner.db.lock().map_err(lock_error)?;
        let row = read_row(&db, "pseudonym", &pseudonym.as_str())?;
        drop(db);
        match row {
            Some(person) => {
                let lookup = self.lookup_of(&person.subject);
                Ok(Some(self.remember(lookup, person)))
            }
            None => {
                self.inner
                    .people
                    .write()
                    .map_err(lock_error)?
                    .gone
                    .insert(pseudonym.clone());
                Ok(None)
            }
        }
    }

    fn remember(&self, lookup: [u8; 32], person: Person) -> Person {
        if let Ok(mut people) = self.inner.people.write()
            && !people.gone.contains(&person.pseudonym)
        {
            people.by_pseudonym.insert(person.pseudonym.clone(), person.clone());
            people.by_lookup.insert(lookup, person.clone());
        }
        person
    }
}

/// A row as stored: pseudonym, key, sealed identifier.
type StoredRow = (String, Vec<u8>, Vec<u8>);

/// Reads and opens one row by `column` (`lookup` or `pseudonym`).
fn read_row(db: &Connection, column: &str, value: &dyn rusqlite::ToSql) -> anyhow::Result<Option<Person>> {
    let sql = format!("SELECT pseudonym, key, sealed FROM subject_vault WHERE {column} = ?1");
    let row: Option<StoredRow> = db
        .query_row(&sql, [value], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .context("journal.db: cannot read the subject vault")?;
    row.map(open_row).transpose()
}

/// A stored row checked and opened with its own key.
fn open_row((pseudonym, key, sealed): StoredRow) -> anyhow::Result<Person> {
    let pseudonym = Pseudonym::parse(&pseudonym).map_err(|e| anyhow::anyhow!("subject_vault: {e}"))?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|k: Vec<u8>| anyhow::anyhow!("subject_vault: {pseudonym}'s key has {} bytes, not 32", k.len()))?;
    let subject = open_with(&key, &pseudonym, &sealed)
        .with_context(|| format!("subject_vault: {pseudonym}'s identifier does not open with its key"))?;
    Ok(Person {
        pseudonym,
        key,
        subject,
    })
}

fn cipher(key: &[u8; 32]) -> anyhow::Result<LessSafeKey> {
    UnboundKey::new(&CHACHA20_POLY1305, key)
        .map(LessSafeKey::new)
        .map_err(|_| anyhow::anyhow!("ChaCha20-Poly1305 refused a 32-byte key"))
}

/// The identifier under `key`: a fresh random nonce, then ciphertext and tag; the pseudonym is the associated
/// data, so a sealed copy cannot be passed off as another person's.
fn seal_with(key: &[u8; 32], pseudonym: &Pseudonym, subject: &SubjectId) -> anyhow::Result<Subject> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut body = subject.as_str().as_bytes().to_vec();
    cipher(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(pseudonym.as_str().as_bytes()),
            &mut body,
        )
        .map_err(|_| anyhow::anyhow!("cannot seal an identifier"))?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&body);
    Ok(Subject {
        pseudonym: pseudonym.clone(),
        sealed,
    })
}

fn open_with(key: &[u8; 32], pseudonym: &Pseudonym, sealed: &[u8]) -> Option<SubjectId> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = cipher(key)
        .ok()?
        .open_in_place(nonce, Aad::from(pseudonym.as_str().as_bytes()), &mut body)
        .ok()?;
    SubjectId::parse(std::str::from_utf8(plain).ok()?).ok()
}

#[cfg(test)]
impl SubjectVault {
    /// A vault on a fresh journal in a temporary directory (kept while the `TempDir` lives), for tests.
    pub(crate) fn scratch() -> (tempfile::TempDir, SubjectVault) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open(&dir.path().join("journal.db"), crate::config::Synchronous::Full).unwrap();
        crate::db::migrate_journal(&mut conn).unwrap();
        let vault = SubjectVault::on(conn).unwrap();
        (dir, vault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> (tempfile::TempDir, SubjectVault) {
        SubjectVault::scratch()
    }

    fn id(s: &str) -> SubjectId {
        SubjectId::parse(s).unwrap()
    }

    #[test]
    fn a_person_keeps_one_random_pseudonym_and_every_sealing_opens_until_they_are_forgotten() {
        let (dir, vault) = vault();
        let first = vault.seal(&id("P-1042")).unwrap();
        let again = vault.seal(&id("P-1042")).unwrap();
        assert_eq!(first, again, "same person, same pseudonym");
        assert_ne!(first.sealed, again.sealed, "a fresh nonce each time");
        assert!(!String::from_utf8_lossy(&first.sealed).contains("1042"));
        assert_ne!(
            first.pseudonym,
            vault.inner.site_key.pseudonym(&id("P-1042")),
            "not the keyed hash"
        );
        assert_ne!(first.pseudonym, vault.seal(&id("P-1043")).unwrap().pseudonym);
        assert_eq!(vault.open_sealed(&first), Some(id("P-1042")));
        assert_eq!(vault.reveal(&first.pseudonym), Revealed::Known(id("P-1042")));

        // Another process (a fresh vault on the same file) finds the same person.
        let other = SubjectVault::open(&dir.path().join("journal.db")).unwrap();
        assert_eq!(other.find(&id("P-1042")).unwrap(), Some(first.pseudonym.clone()));

        assert_eq!(vault.forget(&id("P-1042")).unwrap(), Some(first.pseudonym.clone()));
        assert_eq!(vault.reveal(&first.pseudonym), Revealed::Forgotten);
        assert_eq!(vault.open_sealed(&again), None);
        assert_eq!(vault.find(&id("P-1042")).unwrap(), None);
        assert_eq!(
            vault.forget(&id("P-1042")).unwrap(),
            None,
            "forgetting twice finds nobody"
        );
        // Seen again later, they are a new person with a new pseudonym.
        assert_ne!(vault.seal(&id("P-1042")).unwrap().pseudonym, first.pseudonym);
    }

    #[test]
    fn a_sealed_copy_does_not_open_as_another_person() {
        let (_dir, vault) = vault();
        let a = vault.seal(&id("A")).unwrap();
        let b = vault.seal(&id("B")).unwrap();
        let swapped = Subject {
            pseudonym: b.pseudonym.clone(),
            sealed: a.sealed.clone(),
        };
        assert_eq!(vault.open_sealed(&swapped), None);
        let mut tampered = a.clone();
        if let Some(last) = tampered.sealed.last_mut() {
            *last ^= 1;
        }
        assert_eq!(vault.open_sealed(&tampered), None);
    }

    #[test]
    fn text_and_json_reveal_every_pseudonym_and_leave_the_rest() {
        let (_dir, vault) = vault();
        let p = vault.seal(&id("emp <7>")).unwrap().pseudonym;
        let q = vault.seal(&id("gone")).unwrap().pseudonym;
        vault.forget(&id("gone")).unwrap();
        assert_eq!(
            vault.reveal_text(&format!("subject {p} seen; {q} too; ps-short stays")),
            "subject emp <7> seen; forgotten too; ps-short stays"
        );
        let mut doc = serde_json::json!({"subject": p.as_str(), "list": [q.as_str()], "n": 1});
        vault.reveal_json(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({"subject": "emp <7>", "list": ["forgotten"], "n": 1})
        );
    }

    #[test]
    fn people_seen_before_sealing_keep_their_keyed_hash_pseudonym() {
        let (_dir, vault) = vault();
        let legacy = vault.seal_legacy(&id("P-9")).unwrap();
        assert_eq!(legacy.pseudonym, vault.inner.site_key.pseudonym(&id("P-9")));
        assert_eq!(vault.seal(&id("P-9")).unwrap().pseudonym, legacy.pseudonym);
    }
}
