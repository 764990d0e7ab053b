//! The write-ahead log: the point at which an event becomes durable.
//!
//! `append` hands a batch of records to one writer thread; the writer gathers every batch that
//! is waiting (group commit), encrypts each under the data key of the current WAL file for its
//! project, writes them, fsyncs once, hands the records to the [`WalSink`] (the store's
//! in-memory tail) and only then acknowledges. An acknowledged record therefore survives
//! `kill -9` and power loss, and is queryable as soon as it is acknowledged.
//!
//! On start, [`Wal::open`] replays every file newer than the store's checkpoint into the sink,
//! truncating a torn tail (a record whose length or checksum does not hold).

mod codec;
mod file;
mod recovery;
mod writer;

pub use codec::{decode_records, encode_records};
pub use file::{WalFileId, wal_file_path, wal_keys_path};
pub use recovery::RecoveryReport;
pub use writer::{Wal, WalConfig, WalSink};

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("WAL key: {0}")]
    Crypto(#[from] canopy_crypto::CryptoError),
    #[error("WAL record format: {0}")]
    Format(String),
    #[error("the WAL writer has stopped")]
    Stopped,
    #[error("the WAL queue is full")]
    Overloaded,
}

pub type Result<T, E = WalError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests;
