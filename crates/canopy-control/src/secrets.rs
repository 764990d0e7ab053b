//! Tokens and API secrets.

use crate::{ControlError, Result};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Length of the public lookup prefix of a secret.
pub(crate) const SECRET_ID_LEN: usize = 8;

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A project token: 32 hex characters, like Mixpanel's.
pub fn generate_token() -> String {
    random_hex(16)
}

/// An API secret: 8 hex characters that identify it (stored plainly, to find the row) followed
/// by 32 secret hex characters (only the argon2 hash of the whole secret is stored).
pub fn generate_secret() -> String {
    random_hex(20)
}

pub(crate) fn secret_id(secret: &str) -> Option<&str> {
    secret.get(..SECRET_ID_LEN).filter(|_| secret.len() == 40)
}

pub(crate) fn hash_secret(secret: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ControlError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ControlError::Hash(e.to_string()))
}

pub(crate) fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_against_their_hash_only() {
        let s = generate_secret();
        let h = hash_secret(&s).unwrap();
        assert!(!h.contains(&s[SECRET_ID_LEN..]));
        assert!(verify_secret(&s, &h));
        assert!(!verify_secret(&generate_secret(), &h));
        assert_eq!(secret_id(&s).map(str::len), Some(SECRET_ID_LEN));
        assert_eq!(secret_id("short"), None);
    }
}
