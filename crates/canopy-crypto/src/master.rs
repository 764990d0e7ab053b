use crate::{CryptoError, Key, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the master key came from, so start-up can say it loudly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    Env,
    File(PathBuf),
    Generated(PathBuf),
}

/// The root of the key hierarchy. Never stored in the data dir.
#[derive(Debug)]
pub struct MasterKey {
    key: Key,
    pub source: MasterKeySource,
}

const CHECK_PURPOSE: &str = "canopy-master-key-check-v1";

impl MasterKey {
    pub fn from_key(key: Key, source: MasterKeySource) -> Self {
        Self { key, source }
    }

    /// Parses 64 hex characters (whitespace around them is ignored).
    pub fn parse_hex(text: &str, source: MasterKeySource) -> Result<Self> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| CryptoError::MasterKey("expected 64 hexadecimal characters".into()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::MasterKey("expected 64 hexadecimal characters".into()))?;
        Ok(Self {
            key: Key::from_bytes(arr),
            source,
        })
    }

    /// Loads the key from `path`, or creates it there (mode 0600) when it does not exist and
    /// `create` is true.
    pub fn load_or_create(path: &Path, create: bool) -> Result<Self> {
        let io = |source| CryptoError::MasterKeyIo {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_hex(&text, MasterKeySource::File(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = Key::generate();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path).map_err(io)?;
                f.write_all(hex::encode(key.as_bytes()).as_bytes())
                    .map_err(io)?;
                f.write_all(b"\n").map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(Self {
                    key,
                    source: MasterKeySource::Generated(path.to_path_buf()),
                })
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// A value stored with the data that proves, at the next start, that the same master key
    /// is in use — so a wrong key fails clearly before any data is touched.
    pub fn check_value(&self) -> Result<Vec<u8>> {
        let marker = Key::from_bytes([0u8; 32]);
        Ok(self.key.wrap(&marker, CHECK_PURPOSE)?.as_bytes().to_vec())
    }

    pub fn verify_check_value(&self, stored: &[u8]) -> bool {
        crate::WrappedKey::from_bytes(stored)
            .and_then(|w| self.key.unwrap_key(&w, CHECK_PURPOSE))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/master.key");
        let a = MasterKey::load_or_create(&p, true).unwrap();
        assert!(matches!(a.source, MasterKeySource::Generated(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = MasterKey::load_or_create(&p, false).unwrap();
        assert_eq!(a.key(), b.key());
        let check = a.check_value().unwrap();
        assert!(b.verify_check_value(&check));
        let other = MasterKey::from_key(Key::generate(), MasterKeySource::Env);
        assert!(!other.verify_check_value(&check));
    }

    #[test]
    fn bad_hex_is_a_clear_error() {
        let e = MasterKey::parse_hex("zz", MasterKeySource::Env).unwrap_err();
        assert!(e.to_string().contains("64 hexadecimal"));
    }
}
