use serde::{Deserialize, Serialize};
use std::fmt;

/// A project's numeric id (as Mixpanel's `project_id`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ProjectId(pub u64);

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The internal key of a person. Events carry this key; raw identifiers live with identity.
/// Key 0 is reserved for events that are not tied to any user (empty `distinct_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonKey(pub u64);

impl PersonKey {
    pub const NONE: PersonKey = PersonKey(0);

    /// Which of `buckets` person buckets this person's events live in.
    #[inline]
    pub fn bucket(self, buckets: u32) -> u32 {
        // The key is already a uniform hash; mixing once more guards against a future
        // sequential allocator clustering persons in one bucket.
        let mixed = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The high half fits in 32 bits: a 32-bit division, same result.
        ((mixed >> 32) as u32) % buckets.max(1)
    }
}
