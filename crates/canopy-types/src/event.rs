use crate::{PersonKey, ProjectId};
use serde_json::{Map, Value};

/// A normalized event, after decoding and validation, as it travels through the WAL into the
/// store. Reserved fields are lifted out of `properties`; everything else stays schemaless.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub project: ProjectId,
    pub name: String,
    /// Event time, milliseconds since the epoch.
    pub time_ms: i64,
    /// The identifier the client sent. Identity (a later stage) moves raw identifiers out of
    /// events; until then export needs it.
    pub distinct_id: String,
    pub person: PersonKey,
    /// `$insert_id`, or the mobile SDKs' `$mp_metadata.$mp_event_id`; empty when none was sent.
    pub insert_id: String,
    /// When Canopy received the event, milliseconds since the epoch.
    pub received_ms: i64,
    /// All other properties, as sent.
    pub properties: Map<String, Value>,
    /// The IP the event is attributed to (`ip` property, or the request's with `ip=1`): only
    /// for the policy to look up the country and, where a tier allows, keep a (truncated)
    /// copy. Transient: the WAL codec has no field for it, so it is never written.
    pub ip: Option<std::net::IpAddr>,
}

/// Whose profile an update applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileTarget {
    User { distinct_id: String },
    Group { group_key: String, group_id: String },
}

/// One `/engage` or `/groups` operation, stored as received (after validation). Applying the
/// operations to materialized profiles is the identity layer's job.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileUpdate {
    pub project: ProjectId,
    pub target: ProfileTarget,
    pub person: PersonKey,
    /// `$set`, `$set_once`, `$add`, `$append`, `$union`, `$remove`, `$unset`, `$delete`, `$merge`.
    pub operation: String,
    pub value: Value,
    /// `$time` of the update (or the receive time), milliseconds since the epoch.
    pub time_ms: i64,
    pub received_ms: i64,
    /// Modifiers such as `$ignore_time`, `$ignore_alias`, `$latitude`, `$longitude`.
    pub modifiers: Map<String, Value>,
}

/// What the write path carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Event(Event),
    Profile(ProfileUpdate),
}

impl Record {
    pub fn project(&self) -> ProjectId {
        match self {
            Record::Event(e) => e.project,
            Record::Profile(p) => p.project,
        }
    }
    pub fn person(&self) -> PersonKey {
        match self {
            Record::Event(e) => e.person,
            Record::Profile(p) => p.person,
        }
    }
}
