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
