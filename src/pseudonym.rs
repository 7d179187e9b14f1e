//! The site's pseudonym key: HMAC-SHA256 under a random 256-bit key kept in `journal.db` (`site_keys`), turning a
//! [`SubjectId`] into the digest the subject vault finds a person's row by (and, for people seen before
//! identifiers were sealed, into their pseudonym). The same subject always gets the same digest on one site and an
//! unrelated one elsewhere.

use crate::domain::{Pseudonym, SubjectId};
use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;

const PURPOSE: &str = "subject_pseudonym";

/// The key pseudonyms are made with. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// The site's key, created (randomly, once) the first time it is asked for.
    pub fn load_or_create(journal: &Connection) -> anyhow::Result<Self> {
        let stored: Option<Vec<u8>> = journal
            .query_row("SELECT key FROM site_keys WHERE purpose = ?1", [PURPOSE], |r| r.get(0))
            .optional()
            .context("journal.db: cannot read the pseudonym key")?;
        if let Some(bytes) = stored {
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| anyhow::anyhow!("journal.db: the pseudonym key has {} bytes, not 32", b.len()))?;
            return Ok(Self(key));
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        // Two processes racing to create it: the first insert wins and both read that one.
        journal.execute(
            "INSERT OR IGNORE INTO site_keys (purpose, key, created_at) VALUES (?1, ?2, ?3)",
            params![PURPOSE, key.to_vec(), jiff::Timestamp::now().as_microsecond()],
        )?;
        Self::load_or_create(journal)
    }

    /// A key given outright (tests, tools that hold one).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// HMAC-SHA256 of the identifier under this key: how the subject vault finds a person's row.
    pub fn digest(&self, subject: &SubjectId) -> [u8; 32] {
        // HMAC takes keys of any length, so building it cannot fail; the fallback only satisfies the type.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        mac.update(subject.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The keyed-hash pseudonym: what people seen before identifiers were sealed are named by (their presence
    /// streams, what was forwarded). People seen since get a random one from the subject vault.
    pub fn pseudonym(&self, subject: &SubjectId) -> Pseudonym {
        let digest = self.digest(subject);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Pseudonym::from_digest(&first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(s: &str) -> SubjectId {
        SubjectId::parse(s).unwrap()
    }

    #[test]
    fn one_key_gives_one_stable_pseudonym_per_subject_and_another_key_an_unrelated_one() {
        let key = PseudonymKey::from_bytes([7; 32]);
        let p = key.pseudonym(&subject("P-1042"));
        assert_eq!(p, key.pseudonym(&subject("P-1042")));
        assert_ne!(p, key.pseudonym(&subject("P-1043")));
        assert_ne!(p, PseudonymKey::from_bytes([8; 32]).pseudonym(&subject("P-1042")));
        assert!(!p.as_str().contains("1042"));
        assert_eq!(Pseudonym::parse(p.as_str()), Ok(p.clone()));
        assert!(Pseudonym::parse("P-1042").is_err());
        assert!(Pseudonym::parse("ps-XYZ").is_err());
    }

    #[test]
    fn the_pseudonym_is_hmac_sha256_as_published() {
        // RFC 4231 test case 2: key "Jefe" (HMAC pads a short key with zeros, so the 32-byte form is the same).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let p = PseudonymKey::from_bytes(key).pseudonym(&subject("what do ya want for nothing?"));
        assert_eq!(p.as_str(), "ps-5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn the_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut conn = crate::db::open(&path, crate::config::Synchronous::Full).unwrap();
        crate::db::migrate_journal(&mut conn).unwrap();
        let first = PseudonymKey::load_or_create(&conn).unwrap().pseudonym(&subject("P-7"));
        drop(conn);
        let conn = crate::db::open(&path, crate::config::Synchronous::Full).unwrap();
        let again = PseudonymKey::load_or_create(&conn).unwrap().pseudonym(&subject("P-7"));
        assert_eq!(first, again);
        let keys: i64 = conn
            .query_row("SELECT COUNT(*) FROM site_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(keys, 1);
    }
}
