//! Canopy's shared vocabulary: identifiers, the normalized event and profile-update records, and
//! the clock. No IO lives here.
//!
//! Life of an event: `canopy-ingest` decodes the wire format into [`Event`]s, `canopy-wal` makes
//! them durable, `canopy-store` turns them into segments, `canopy-query` reads them back.

mod clock;
mod event;
mod identity;
mod ids;

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{Event, ProfileTarget, ProfileUpdate, Record};
pub use identity::{IDENTIFIER_PROPERTIES, IdMergeMode, is_identifier_property};
pub use ids::{PersonKey, ProjectId};

/// The calling crate's directory as the running test sees it (cargo sets `CARGO_MANIFEST_DIR`
/// when it runs tests), falling back to the compile-time value: a test binary built from
/// another checkout that shares the target dir still finds this checkout's files.
#[macro_export]
macro_rules! crate_dir {
    () => {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
    };
}
