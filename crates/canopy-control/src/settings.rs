//! Versioned project settings. Later issues add the privacy policy here; every change is a new
//! version, so what was in force when an event arrived stays known.

use crate::{ControlError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectSettings {
    /// IANA time zone used for day boundaries in reports.
    pub timezone: String,
    /// Accept `/track` events at most this many days old (Mixpanel: 5).
    pub track_max_age_days: u32,
    /// Simplified or original ID merge; fixed once the project holds data.
    pub id_merge: canopy_types::IdMergeMode,
    /// Audience, tier policies, data dictionary (issue #4).
    pub privacy: canopy_policy::PrivacySettings,
}

impl Default for ProjectSettings {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            track_max_age_days: 5,
            id_merge: canopy_types::IdMergeMode::default(),
            privacy: canopy_policy::PrivacySettings::default(),
        }
    }
}

impl ProjectSettings {
    pub fn validate(&self) -> Result<()> {
        let tz = &self.timezone;
        let plausible = tz == "UTC"
            || (tz.contains('/')
                && tz
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c)));
        if !plausible {
            return Err(ControlError::InvalidSettings(format!(
                "timezone {tz:?} is not an IANA zone name such as \"UTC\" or \"Asia/Kolkata\""
            )));
        }
        self.privacy
            .validate()
            .map_err(ControlError::InvalidSettings)?;
        if self.track_max_age_days == 0 || self.track_max_age_days > 3650 {
            return Err(ControlError::InvalidSettings(
                "track_max_age_days must be between 1 and 3650".into(),
            ));
        }
        Ok(())
    }
}
