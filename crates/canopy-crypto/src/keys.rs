use crate::{CryptoError, Result};
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a wrapped key: 12-byte nonce, 32-byte ciphertext, 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 12 + 32 + 16;

/// A 256-bit symmetric key. Zeroed on drop; `Debug` never prints it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Key(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.0).into())
    }

    /// Wraps `key` under this key. `purpose` names what the wrapped key protects (a file, a
    /// project) and must be given again to unwrap.
    pub fn wrap(&self, key: &Key, purpose: &str) -> Result<WrappedKey> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: &key.0,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(WrappedKey(out))
    }

    pub fn unwrap_key(&self, wrapped: &WrappedKey, purpose: &str) -> Result<Key> {
        let (nonce, ct) = wrapped.0.split_at(12);
        let mut pt = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        let arr: [u8; 32] = pt.as_slice().try_into().map_err(|_| CryptoError::Decrypt)?;
        pt.zeroize();
        Ok(Key(arr))
    }
}

/// A key encrypted under another key; safe to store.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrappedKey(..)")
    }
}

impl WrappedKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != WRAPPED_KEY_LEN {
            return Err(CryptoError::WrappedKeyLength(bytes.len()));
        }
        Ok(WrappedKey(bytes.to_vec()))
    }
    pub fn from_hex(s: &str) -> Result<Self> {
        let bytes = hex::decode(s).map_err(|_| CryptoError::WrappedKeyLength(s.len() / 2))?;
        Self::from_bytes(&bytes)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// Encrypts `plaintext` under `key` with a caller-chosen 12-byte nonce (which must never repeat
/// for one key) and `aad`. Returns ciphertext followed by the 16-byte tag.
pub fn seal(key: &Key, nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    key.cipher()
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Encrypt)
}

/// Reverses [`seal`].
pub fn open(key: &Key, nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
    key.cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trips_and_binds_purpose() {
        let kek = Key::generate();
        let dk = Key::generate();
        let w = kek.wrap(&dk, "segment:1").unwrap();
        assert_eq!(w.as_bytes().len(), WRAPPED_KEY_LEN);
        assert_eq!(kek.unwrap_key(&w, "segment:1").unwrap(), dk);
        assert!(kek.unwrap_key(&w, "segment:2").is_err());
        assert!(Key::generate().unwrap_key(&w, "segment:1").is_err());
    }

    #[test]
    fn seal_detects_tampering() {
        let k = Key::generate();
        let n = [7u8; 12];
        let mut ct = seal(&k, &n, b"a", b"hello").unwrap();
        assert_eq!(open(&k, &n, b"a", &ct).unwrap(), b"hello");
        ct[0] ^= 1;
        assert!(open(&k, &n, b"a", &ct).is_err());
    }

    #[test]
    fn debug_hides_key_material() {
        let k = Key::from_bytes([0xAB; 32]);
        assert_eq!(format!("{k:?}"), "Key(..)");
    }
}
