use serde::{Deserialize, Serialize};

/// How a project merges identities (Mixpanel's two ID-merge systems). Chosen when the project
/// is created; changing it once data exists would change what every stored key means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMergeMode {
    /// `$device_id` / `$user_id`: one user id per cluster, unlimited devices.
    #[default]
    Simplified,
    /// `$identify`, `$create_alias`, `$merge`: clusters of up to 500 ids.
    Original,
}

impl IdMergeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IdMergeMode::Simplified => "simplified",
            IdMergeMode::Original => "original",
        }
    }
}

impl std::str::FromStr for IdMergeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "simplified" => Ok(Self::Simplified),
            "original" => Ok(Self::Original),
            other => Err(format!(
                "unknown ID merge mode {other:?}: expected \"simplified\" or \"original\""
            )),
        }
    }
}

/// Event properties that carry raw identifiers. Identity reads them; they stay on the event in
/// the WAL (so identity can be replayed after a crash) and never reach a segment: raw ids live
/// only in the identity store.
pub const IDENTIFIER_PROPERTIES: &[&str] = &[
    "$device_id",
    "$user_id",
    "$anon_distinct_id",
    "$anon_id",
    "$identified_id",
    "$distinct_ids",
];

/// Is `property` of an event named `event` a raw identifier (see [`IDENTIFIER_PROPERTIES`])?
/// `alias` is one only on `$create_alias`.
pub fn is_identifier_property(event: &str, property: &str) -> bool {
    IDENTIFIER_PROPERTIES.contains(&property) || (event == "$create_alias" && property == "alias")
}
