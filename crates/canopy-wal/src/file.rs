//! On-disk layout of one WAL file (format version 1).
//!
//! `wal/<seq>.wal`:  header = magic "CNPYWAL1", u32 version, u64 seq;
//!                   then frames = u32 body length, u32 CRC-32 of body, body.
//!                   body = u64 project, u64 frame number, AES-256-GCM ciphertext+tag of the
//!                   encoded records (nonce = frame number; AAD = seq ‖ project ‖ frame number).
//! `wal/<seq>.keys`: the data keys of that file, one per project that wrote to it, each wrapped
//!                   by the project's key: u64 project, 60-byte wrapped key, u32 CRC-32.
//!
//! Keys live beside the file, not in it: deleting a `.keys` entry makes the frames it protects
//! unreadable wherever copies of the `.wal` file survive.

use crate::{Result, WalError, io_err};
use canopy_crypto::{Key, ProjectKeyring, WRAPPED_KEY_LEN, WrappedKey};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub(crate) const MAGIC: &[u8; 8] = b"CNPYWAL1";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 8 + 4 + 8;
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// A frame larger than this is treated as corruption (appends are bounded far below it).
pub(crate) const MAX_FRAME: usize = 256 << 20;
const KEY_ENTRY_LEN: usize = 8 + WRAPPED_KEY_LEN + 4;

/// Sequence number of a WAL file; files are replayed in this order.
pub type WalFileId = u64;

pub fn wal_file_path(dir: &Path, seq: WalFileId) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

pub fn wal_keys_path(dir: &Path, seq: WalFileId) -> PathBuf {
    dir.join(format!("{seq:020}.keys"))
}

pub(crate) fn key_purpose(seq: WalFileId, project: u64) -> String {
    format!("wal:{seq}:{project}")
}

pub(crate) fn frame_aad(seq: WalFileId, project: u64, frame: u64) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..8].copy_from_slice(&seq.to_le_bytes());
    aad[8..16].copy_from_slice(&project.to_le_bytes());
    aad[16..].copy_from_slice(&frame.to_le_bytes());
    aad
}

pub(crate) fn frame_nonce(frame: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&frame.to_le_bytes());
    n
}

pub(crate) fn header(seq: WalFileId) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&seq.to_le_bytes());
    h
}

pub(crate) fn parse_header(bytes: &[u8], expected_seq: WalFileId) -> Result<()> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(WalError::Format("not a Canopy WAL file".into()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(WalError::Format(format!(
            "unsupported WAL version {version}"
        )));
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[12..20]);
    if u64::from_le_bytes(s) != expected_seq {
        return Err(WalError::Format(
            "WAL file sequence does not match its name".into(),
        ));
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// The data keys of one WAL file, appended (and fsync'd) before any frame that uses them.
pub(crate) struct KeysFile {
    pub(crate) seq: WalFileId,
    path: PathBuf,
    file: Option<File>,
    keys: HashMap<u64, Key>,
}

impl KeysFile {
    pub(crate) fn create(dir: &Path, seq: WalFileId) -> Self {
        Self {
            seq,
            path: wal_keys_path(dir, seq),
            file: None,
            keys: HashMap::new(),
        }
    }

    /// Reads the keys of an existing file, ignoring a torn last entry.
    pub(crate) fn load(dir: &Path, seq: WalFileId, keyring: &dyn ProjectKeyring) -> Result<Self> {
        let path = wal_keys_path(dir, seq);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_err(&path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        let mut keys = HashMap::new();
        for entry in bytes.chunks_exact(KEY_ENTRY_LEN) {
            let (body, crc) = entry.split_at(8 + WRAPPED_KEY_LEN);
            if crc32fast::hash(body).to_le_bytes() != crc {
                break;
            }
            let mut p = [0u8; 8];
            p.copy_from_slice(&body[..8]);
            let project = u64::from_le_bytes(p);
            let wrapped = WrappedKey::from_bytes(&body[8..])?;
            let pk = keyring.project_key(project)?;
            keys.insert(
                project,
                pk.unwrap_key(&wrapped, &key_purpose(seq, project))?,
            );
        }
        Ok(Self {
            seq,
            path,
            file: None,
            keys,
        })
    }

    pub(crate) fn get(&self, project: u64) -> Option<&Key> {
        self.keys.get(&project)
    }

    /// Returns the key for `project`, creating and appending it when new. The caller must
    /// [`KeysFile::sync`] before writing frames that use a new key.
    pub(crate) fn get_or_create(
        &mut self,
        project: u64,
        keyring: &dyn ProjectKeyring,
    ) -> Result<(Key, bool)> {
        if let Some(k) = self.keys.get(&project) {
            return Ok((k.clone(), false));
        }
        let key = Key::generate();
        let wrapped = keyring
            .project_key(project)?
            .wrap(&key, &key_purpose(self.seq, project))?;
        let mut entry = Vec::with_capacity(KEY_ENTRY_LEN);
        entry.extend_from_slice(&project.to_le_bytes());
        entry.extend_from_slice(wrapped.as_bytes());
        let crc = crc32fast::hash(&entry);
        entry.extend_from_slice(&crc.to_le_bytes());
        let path = self.path.clone();
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&entry).map_err(io_err(&path))?;
        }
        self.keys.insert(project, key.clone());
        Ok((key, true))
    }

    pub(crate) fn sync(&mut self) -> Result<()> {
        let path = self.path.clone();
        if let Some(f) = self.file.as_mut() {
            f.sync_data().map_err(io_err(&path))?;
        }
        Ok(())
    }
}
