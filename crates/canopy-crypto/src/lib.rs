//! Envelope encryption for everything Canopy writes to disk.
//!
//! master key (key file or env, never in the data dir)
//!   └─ wraps a per-project key (stored wrapped in the control plane)
//!        └─ wraps a fresh data key per WAL file and per segment (stored wrapped beside, never
//!           inside, the file it protects, so destroying the wrapped key makes the file's bytes
//!           unreadable even in backups).
//!
//! All ciphers are AES-256-GCM from the RustCrypto `aes-gcm` crate. Every wrap binds an AAD
//! naming what the key is for, so a wrapped key cannot be swapped onto another file.

mod keys;
mod master;

pub use keys::{Key, WRAPPED_KEY_LEN, WrappedKey, open, seal};
pub use master::{MasterKey, MasterKeySource};

/// Errors from key handling and ciphers. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("decryption failed (wrong key, or the data was altered)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("wrapped key has {0} bytes, expected {WRAPPED_KEY_LEN}")]
    WrappedKeyLength(usize),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("master key file {path}: {source}")]
    MasterKeyIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// Looks up (and caches) the unwrapped key of a project. The control plane implements it.
pub trait ProjectKeyring: Send + Sync {
    fn project_key(&self, project: u64) -> Result<Key>;
}

/// Project keys generated on first use and kept only in memory — for tests and tools that run
/// without a control plane. The keys die with the value, and with them the data.
#[derive(Debug, Default)]
pub struct MemoryKeyring(std::sync::Mutex<std::collections::HashMap<u64, Key>>);

impl ProjectKeyring for MemoryKeyring {
    fn project_key(&self, project: u64) -> Result<Key> {
        let mut keys = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(keys.entry(project).or_insert_with(Key::generate).clone())
    }
}
