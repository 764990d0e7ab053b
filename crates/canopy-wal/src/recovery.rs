//! Replaying WAL files after a restart.

use crate::codec::decode_records;
use crate::file::{
    FRAME_HEADER_LEN, HEADER_LEN, KeysFile, MAX_FRAME, WalFileId, frame_aad, frame_nonce,
    parse_header, wal_file_path, wal_keys_path,
};
use crate::{Result, WalError, io_err};
use canopy_crypto::{ProjectKeyring, open};
use canopy_types::Record;
use std::path::Path;

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub files_replayed: usize,
    pub frames_replayed: u64,
    pub records_replayed: u64,
    /// Bytes cut from torn tails.
    pub bytes_truncated: u64,
    pub files_removed_as_flushed: usize,
}

/// Lists WAL file sequence numbers present in `dir`, ascending.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<WalFileId>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal")
            && let Ok(seq) = stem.parse::<u64>()
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Replays one file, handing each decoded frame's records to `apply`. A torn or corrupt tail
/// is truncated so the file ends at the last complete frame.
pub(crate) fn replay_file(
    dir: &Path,
    seq: WalFileId,
    keyring: &dyn ProjectKeyring,
    report: &mut RecoveryReport,
    apply: &mut dyn FnMut(Vec<Record>),
) -> Result<()> {
    let path = wal_file_path(dir, seq);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    if bytes.len() < HEADER_LEN {
        // Crashed while creating the file: nothing in it was ever acknowledged.
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        let _ = std::fs::remove_file(wal_keys_path(dir, seq));
        report.bytes_truncated += bytes.len() as u64;
        return Ok(());
    }
    parse_header(&bytes, seq)?;
    let keys = KeysFile::load(dir, seq, keyring)?;
    let mut pos = HEADER_LEN;
    let mut valid_end = pos;
    while pos + FRAME_HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let start = pos + FRAME_HEADER_LEN;
        if !(16..=MAX_FRAME).contains(&len) || start + len > bytes.len() {
            break;
        }
        let body = &bytes[start..start + len];
        if crc32fast::hash(body) != crc {
            break;
        }
        let mut p = [0u8; 8];
        p.copy_from_slice(&body[..8]);
        let project = u64::from_le_bytes(p);
        p.copy_from_slice(&body[8..16]);
        let frame = u64::from_le_bytes(p);
        let key = keys.get(project).ok_or_else(|| {
            WalError::Format(format!("WAL file {seq} has a frame without its data key"))
        })?;
        let plain = open(
            key,
            &frame_nonce(frame),
            &frame_aad(seq, project, frame),
            &body[16..],
        )?;
        let records = decode_records(&plain)?;
        report.frames_replayed += 1;
        report.records_replayed += records.len() as u64;
        apply(records);
        pos = start + len;
        valid_end = pos;
    }
    if valid_end < bytes.len() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.set_len(valid_end as u64).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
        report.bytes_truncated += (bytes.len() - valid_end) as u64;
        tracing::warn!(
            wal_file = seq,
            bytes = bytes.len() - valid_end,
            "truncated torn WAL tail"
        );
    }
    report.files_replayed += 1;
    Ok(())
}
