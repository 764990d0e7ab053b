//! The SLA clock of a request: the law's deadline (regulation-controls.md §D) and Canopy's own
//! internal target of 30 days, whichever comes first.

use crate::{DsrError, Result};
use chrono::{DateTime, Months, Utc};

const DAY_MS: i64 = 86_400_000;
/// Internal target for every erasure and access request.
pub const INTERNAL_TARGET_DAYS: i64 = 30;

/// The law a request is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regulation {
    /// GDPR / UK GDPR: one month (Art. 12(3)).
    Gdpr,
    /// CCPA/CPRA: 45 calendar days (1798.130(a)(2)).
    Ccpa,
    /// COPPA: "reasonable means", no day count; the internal target applies.
    Coppa,
    /// India's DPDP Act: grievance redress within 90 days (Rule 14(3)).
    Dpdp,
}

impl Regulation {
    pub fn parse(s: &str) -> Result<Regulation> {
        match s.to_ascii_lowercase().as_str() {
            "gdpr" | "uk_gdpr" => Ok(Regulation::Gdpr),
            "ccpa" | "cpra" => Ok(Regulation::Ccpa),
            "coppa" => Ok(Regulation::Coppa),
            "dpdp" => Ok(Regulation::Dpdp),
            _ => Err(DsrError::BadRequest(
                "regulation must be one of gdpr, ccpa, coppa, dpdp".into(),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Regulation::Gdpr => "gdpr",
            Regulation::Ccpa => "ccpa",
            Regulation::Coppa => "coppa",
            Regulation::Dpdp => "dpdp",
        }
    }

    /// The law's own deadline for a request received at `received_ms`, if it sets one.
    pub fn legal_deadline_ms(self, received_ms: i64) -> Option<i64> {
        match self {
            Regulation::Gdpr => DateTime::<Utc>::from_timestamp_millis(received_ms)
                .and_then(|t| t.checked_add_months(Months::new(1)))
                .map(|t| t.timestamp_millis()),
            Regulation::Ccpa => Some(received_ms + 45 * DAY_MS),
            Regulation::Coppa => None,
            Regulation::Dpdp => Some(received_ms + 90 * DAY_MS),
        }
    }

    /// When the request is due: the earlier of the law's deadline and the internal target.
    pub fn due_ms(self, received_ms: i64) -> i64 {
        let internal = received_ms + INTERNAL_TARGET_DAYS * DAY_MS;
        self.legal_deadline_ms(received_ms)
            .map_or(internal, |legal| legal.min(internal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_each_law_and_never_exceed_the_internal_target() {
        // 2026-01-31: one calendar month later is 2026-02-28 (chrono clamps the day).
        let jan31 = 1_769_817_600_000;
        assert_eq!(
            Regulation::Gdpr.legal_deadline_ms(jan31),
            Some(jan31 + 28 * DAY_MS)
        );
        assert_eq!(Regulation::Gdpr.due_ms(jan31), jan31 + 28 * DAY_MS);
        assert_eq!(Regulation::Ccpa.legal_deadline_ms(0), Some(45 * DAY_MS));
        assert_eq!(Regulation::Ccpa.due_ms(0), 30 * DAY_MS);
        assert_eq!(Regulation::Coppa.legal_deadline_ms(0), None);
        assert_eq!(Regulation::Coppa.due_ms(0), 30 * DAY_MS);
        assert_eq!(Regulation::parse("GDPR").unwrap(), Regulation::Gdpr);
        assert!(Regulation::parse("hipaa").is_err());
    }
}
