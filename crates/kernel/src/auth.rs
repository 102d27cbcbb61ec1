//! Auth primitives: random secrets, their hashes, passwords, signing keys.
//!
//! A secret exists as a [`PlainToken`] only on its way to the one person who
//! sees it; everything stored or compared is a [`TokenHash`]. Neither prints
//! its content in `Debug`.

use std::fmt;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// Fills a fresh array from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing is not recoverable and not input-driven.
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

/// A secret as handed out once (API key, device token, access token).
#[derive(Clone)]
pub struct PlainToken(String);

impl PlainToken {
    /// `prefix` + 32 random bytes, base64url.
    pub fn generate(prefix: &str) -> Self {
        PlainToken(format!(
            "{prefix}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        ))
    }

    pub fn from_presented(s: &str) -> Self {
        PlainToken(s.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).to_vec())
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(***)")
    }
}

/// SHA-256 of a secret: what is stored and looked up.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub Vec<u8>);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Argon2id hash in PHC string form.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = random_bytes::<16>();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    <Argon2 as PasswordVerifier<str>>::verify_password(&Argon2::default(), password.as_bytes(), phc)
        .is_ok()
}

/// SHA-256 of arbitrary bytes (request fingerprints).
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

pub use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

pub fn generate_signing_key() -> SigningKey {
    SigningKey::from_bytes(&random_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hide_in_debug() {
        let a = PlainToken::generate("vg_");
        let b = PlainToken::generate("vg_");
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "PlainToken(***)");
        assert_eq!(a.hash(), PlainToken::from_presented(a.expose()).hash());
    }
}
