//! Where segments live on disk, and how events are partitioned.

use canopy_types::ProjectId;
use chrono::{DateTime, Datelike};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The two kinds of rows the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Events,
    ProfileUpdates,
}

impl Table {
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::ProfileUpdates => "profile_updates",
        }
    }
}

/// A calendar month in UTC: the time partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of_ms(ms: i64) -> Month {
        let dt = DateTime::from_timestamp_millis(ms).unwrap_or_default();
        Month {
            year: dt.year(),
            month: dt.month(),
        }
    }

    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        let month: u32 = m.parse().ok()?;
        (1..=12).contains(&month).then_some(Month {
            year: y.parse().ok()?,
            month,
        })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The partition a segment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub project: ProjectId,
    pub table: Table,
    pub month: Month,
    pub bucket: u32,
}

pub(crate) fn segment_rel_path(p: &Partition, id: u64) -> PathBuf {
    PathBuf::from(format!(
        "segments/p{}/{}/{}/b{:03}/{:016}.parquet",
        p.project.0,
        p.table.as_str(),
        p.month,
        p.bucket,
        id
    ))
}

pub(crate) fn segments_root(data_dir: &Path) -> PathBuf {
    data_dir.join("segments")
}

pub(crate) fn segment_key_purpose(id: u64) -> String {
    format!("segment:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc() {
        assert_eq!(Month::of_ms(1_700_000_000_000).to_string(), "2023-11");
        assert_eq!(Month::of_ms(0).to_string(), "1970-01");
        assert_eq!(
            Month::parse("2026-02"),
            Some(Month {
                year: 2026,
                month: 2
            })
        );
        assert_eq!(Month::parse("2026-13"), None);
    }
}
