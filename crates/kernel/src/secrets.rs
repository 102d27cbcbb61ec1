//! The master key: what seals private keys at rest (an org's ticket-signing
//! keys), so a copy of the database alone signs nothing.
//!
//! Where it comes from, in order: `--master-key-file` (32 random bytes, or
//! their hex or base64 text); in embedded mode, `master.key` in the data
//! dir, made on first start (with a warning: back it up with the data);
//! in production mode without a file, a key kept in the database itself,
//! with a warning at every start — several nodes then share it, but it
//! seals nothing from whoever holds the database, so give the nodes a
//! file. Sealed values name the key's fingerprint, so a node started with
//! a new key re-seals what an old one (the database's, say) sealed.

use std::path::Path;

use base64::Engine;
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use sha2::{Digest, Sha256};

use crate::{Config, Db, db_run};

/// Where the key came from, for the operator's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    File,
    DataDir,
    Database,
}

pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// The first 8 bytes of the key's SHA-256, hex: which key sealed a value.
    pub fingerprint: String,
    pub source: Source,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("fingerprint", &self.fingerprint)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("master key file {path}: {why}")]
    File { path: String, why: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const NONCE: usize = 24;

impl MasterKey {
    pub fn from_bytes(key: &[u8; 32], source: Source) -> MasterKey {
        let digest = Sha256::digest(key);
        MasterKey {
            cipher: XChaCha20Poly1305::new(key.into()),
            fingerprint: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
            source,
        }
    }

    /// A fresh random key (tests).
    pub fn random() -> MasterKey {
        MasterKey::from_bytes(&crate::auth::random_bytes::<32>(), Source::DataDir)
    }

    /// Seals `secret`, bound to `context` (what it is the secret of: a
    /// sealed value moved to another row does not open). Nonce ‖ ciphertext.
    pub fn seal(&self, context: &[u8], secret: &[u8]) -> Vec<u8> {
        let nonce = crate::auth::random_bytes::<NONCE>();
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: context,
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    /// The secret, when `sealed` is this key's sealing of it for `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() <= NONCE {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
    }

    /// The node's master key (see the module's note for the order).
    pub async fn resolve(config: &Config, db: &Db) -> Result<MasterKey, Error> {
        if let Some(path) = &config.master_key_file {
            return Ok(MasterKey::from_bytes(&read(path)?, Source::File));
        }
        if config.database_url.is_none() {
            let path = config.data_dir.join("master.key");
            if !path.exists() {
                make(&path)?;
                tracing::warn!(path = %path.display(), "made a master key for this data dir: it seals the signing keys; back it up with the data (or give --master-key-file)");
            }
            return Ok(MasterKey::from_bytes(&read(&path)?, Source::DataDir));
        }
        let key = database_key(db).await?;
        tracing::warn!(
            "no --master-key-file: private keys are sealed under a key kept in the database itself; give every node the same --master-key-file"
        );
        Ok(MasterKey::from_bytes(&key, Source::Database))
    }

    /// The key kept in the database (made once), whatever this node uses:
    /// to open what it sealed before a file was configured.
    pub async fn database(db: &Db) -> Result<Option<MasterKey>, Error> {
        let sql = "SELECT value FROM node_secrets WHERE name = 'master_key'";
        let v: Option<Vec<u8>> = db_run!(db, p => sqlx::query_scalar(sql).fetch_optional(p).await)?;
        Ok(v.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .map(|k| MasterKey::from_bytes(&k, Source::Database)))
    }
}

async fn database_key(db: &Db) -> Result<[u8; 32], Error> {
    let fresh = crate::auth::random_bytes::<32>().to_vec();
    let sql = "INSERT INTO node_secrets (name, value) VALUES ('master_key', $1) ON CONFLICT (name) DO NOTHING";
    db_run!(db, p => sqlx::query(sql).bind(&fresh).execute(p).await.map(|r| r.rows_affected()))?;
    let sql = "SELECT value FROM node_secrets WHERE name = 'master_key'";
    let v: Vec<u8> = db_run!(db, p => sqlx::query_scalar(sql).fetch_one(p).await)?;
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| {
        Error::Db(sqlx::Error::Protocol(
            "node_secrets.master_key is not 32 bytes".into(),
        ))
    })
}

fn read(path: &Path) -> Result<[u8; 32], Error> {
    let fail = |why: String| Error::File {
        path: path.display().to_string(),
        why,
    };
    let raw = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if let Ok(k) = <[u8; 32]>::try_from(raw.as_slice()) {
        return Ok(k);
    }
    let text = String::from_utf8_lossy(&raw);
    let text = text.trim();
    let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .ok()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .or_else(|| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
            })
    };
    decoded
        .and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
        .ok_or_else(|| fail("must hold 32 bytes: raw, or as hex or base64 text".into()))
}

fn make(path: &Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::File {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let text = base64::engine::general_purpose::STANDARD.encode(crate::auth::random_bytes::<32>());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(path).map_err(fail)?;
    f.write_all(format!("{text}\n").as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context_only() {
        let k = MasterKey::random();
        let sealed = k.seal(b"org:1/kid:a", b"secret");
        assert_eq!(
            k.open(b"org:1/kid:a", &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(k.open(b"org:2/kid:a", &sealed), None);
        assert_eq!(MasterKey::random().open(b"org:1/kid:a", &sealed), None);
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(b"org:1/kid:a", &flipped), None);
        assert_eq!(k.open(b"org:1/kid:a", &sealed[..10]), None);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn a_key_file_is_raw_hex_or_base64() {
        let dir = std::env::temp_dir().join(format!("vg-mk-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = [7u8; 32];
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        for (name, body) in [
            ("raw", key.to_vec()),
            ("hex", format!("{hex}\n").into_bytes()),
            (
                "b64",
                base64::engine::general_purpose::STANDARD
                    .encode(key)
                    .into_bytes(),
            ),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            assert_eq!(read(&p).unwrap(), key, "{name}");
        }
        let p = dir.join("short");
        std::fs::write(&p, "abc").unwrap();
        assert!(read(&p).is_err());
        let made = dir.join("sub/master.key");
        make(&made).unwrap();
        assert_eq!(read(&made).unwrap().len(), 32);
        assert!(make(&made).is_err(), "never overwritten");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
