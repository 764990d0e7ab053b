//! Data-subject requests (issue #6): erasure in seconds with a signed receipt, whichever API
//! the request came through (native, Mixpanel GDPR v3, OpenDSR).
//!
//! Life of an erasure here: [`Dsr::submit`] validates the subject, seals its identifiers into
//! a durable request row (`canopy-control`'s queue) and returns; [`Dsr::run_open`] (called by
//! the server's worker whenever a request arrives, and at start-up to resume interrupted ones)
//! batches the open erasures of each project and runs `erasure.rs`: resolve every identity
//! cluster, suppress the ids, rewrite the store's segments without the rows
//! (`canopy-store`'s `erase_persons`), delete ledger, tier and identity rows, clear caches,
//! prove by a scan that nothing is left, and sign a receipt (`receipt.rs`).

mod access;
mod deadline;
mod erasure;
mod receipt;
mod receipt_body;
mod requests;
mod subject;

pub use deadline::{INTERNAL_TARGET_DAYS, Regulation};
pub use erasure::EraseHooks;
pub use receipt::{PublishedKey, RECEIPT_FORMAT, ReceiptSigner, Verified, verify_receipt};
pub use requests::{Dsr, DsrConfig, NewRequest, RequestKind};
pub use subject::{MAX_IDS, Subject};

#[derive(Debug, thiserror::Error)]
pub enum DsrError {
    /// The client's mistake (a 400): the message never repeats an identifier.
    #[error("{0}")]
    BadRequest(String),
    #[error("no such request")]
    NotFound,
    /// The request exists but can no longer change (e.g. cancel after it started).
    #[error("{0}")]
    Conflict(String),
    #[error("receipt: {0}")]
    Receipt(String),
    #[error(transparent)]
    Store(#[from] canopy_store::StoreError),
    #[error(transparent)]
    Identity(#[from] canopy_identity::IdentityError),
    #[error(transparent)]
    Control(#[from] canopy_control::ControlError),
    #[error(transparent)]
    Crypto(#[from] canopy_crypto::CryptoError),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = DsrError> = std::result::Result<T, E>;
