//! What an event says about identity, per ID-merge mode (mixpanel-api.md §11.2). Pure: reads
//! the event's reserved properties, decides its effective distinct_id and the merges it asks
//! for. The properties stay on the event (the WAL needs them to replay identity after a crash);
//! the store drops them before anything reaches a segment.

use canopy_types::{Event, IdMergeMode};
use serde_json::Value;

pub use canopy_types::IDENTIFIER_PROPERTIES;

/// A merge an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Simplified: attach anonymous ids (device ids, a pre-identify distinct_id) to the
    /// cluster of `user`, which is the cluster's one `$user_id`.
    Link { user: String, anon: Vec<String> },
    /// Original: `$identify` — merge the anonymous id into the identified one.
    Identify { identified: String, anon: String },
    /// Original: `$create_alias` — `alias` becomes another name of `original`'s cluster.
    Alias { alias: String, original: String },
    /// Original: `$merge` — join two clusters (accepted from authenticated `/import` only).
    Merge { a: String, b: String },
    /// Something the mode does not support; counted, never applied.
    Unsupported(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// The distinct_id the event is recorded under.
    pub distinct_id: String,
    /// An id that is a known user (simplified `$user_id`, original `$identify` target).
    pub identified: Option<String>,
    pub ops: Vec<Op>,
}

/// Reads `event` under `mode`. `allow_merge` is true only for authenticated `/import`, the one
/// route on which Mixpanel honours `$merge`.
pub fn hints(mode: IdMergeMode, event: &Event, allow_merge: bool) -> Hints {
    let prop = |name: &str| -> Option<String> {
        match event.properties.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let mut ops = Vec::new();
    match mode {
        IdMergeMode::Simplified => {
            let user = prop("$user_id");
            let device = prop("$device_id").map(|d| format!("$device:{d}"));
            let distinct_id = user
                .clone()
                .or_else(|| device.clone())
                .unwrap_or_else(|| event.distinct_id.clone());
            let mut anon: Vec<String> = Vec::new();
            if user.is_some() {
                anon.extend(device);
            }
            let mut identified = user.clone();
            if event.name == "$identify"
                && let Some(a) = prop("$anon_distinct_id")
            {
                identified.get_or_insert_with(|| distinct_id.clone());
                anon.push(a);
            }
            if let Some(u) = &identified {
                anon.retain(|a| a != u);
                anon.dedup();
                if !anon.is_empty() {
                    ops.push(Op::Link {
                        user: u.clone(),
                        anon,
                    });
                }
            }
            match event.name.as_str() {
                "$create_alias" => ops.push(Op::Unsupported("alias_in_simplified_mode")),
                "$merge" => ops.push(Op::Unsupported("merge_in_simplified_mode")),
                _ => {}
            }
            Hints {
                distinct_id,
                identified,
                ops,
            }
        }
        IdMergeMode::Original => {
            let mut distinct_id = event.distinct_id.clone();
            let mut identified = None;
            match event.name.as_str() {
                "$identify" => {
                    let target = prop("$identified_id").unwrap_or_else(|| distinct_id.clone());
                    match prop("$anon_id").or_else(|| prop("$anon_distinct_id")) {
                        Some(anon) if !target.is_empty() => {
                            identified = Some(target.clone());
                            ops.push(Op::Identify {
                                identified: target,
                                anon,
                            });
                        }
                        _ => ops.push(Op::Unsupported("identify_without_anon_id")),
                    }
                }
                "$create_alias" => match prop("alias") {
                    Some(alias) if !distinct_id.is_empty() => ops.push(Op::Alias {
                        alias,
                        original: distinct_id.clone(),
                    }),
                    _ => ops.push(Op::Unsupported("alias_without_ids")),
                },
                "$merge" => {
                    let ids: Vec<String> = match event.properties.get("$distinct_ids") {
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(|v| v.as_str().filter(|s| !s.is_empty()))
                            .map(str::to_string)
                            .collect(),
                        _ => Vec::new(),
                    };
                    match (allow_merge, ids.as_slice()) {
                        (false, _) => ops.push(Op::Unsupported("merge_requires_import")),
                        (true, [a, b]) => {
                            // Python's `merge` sends no distinct_id: the event belongs to
                            // the merged person.
                            if distinct_id.is_empty() {
                                distinct_id = a.clone();
                            }
                            ops.push(Op::Merge {
                                a: a.clone(),
                                b: b.clone(),
                            })
                        }
                        (true, _) => ops.push(Op::Unsupported("merge_needs_two_ids")),
                    }
                }
                _ => {}
            }
            Hints {
                distinct_id,
                identified,
                ops,
            }
        }
    }
}

/// Does `id` look like an anonymous id? Original ID merge only merges such ids through
/// `$identify` (Mixpanel: a UUID). Accepted: the SDKs' `$device:` ids, UUIDs, and the older
/// JS SDK's dash-separated hex device ids.
pub fn looks_anonymous(id: &str) -> bool {
    if id.starts_with("$device:") {
        return true;
    }
    id.len() >= 16 && id.contains('-') && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}
