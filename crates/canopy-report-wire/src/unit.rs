//! The time units reports group by: local hours, days, weeks (Monday) and months.

use crate::{Result, invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Hour,
    Day,
    Week,
    Month,
}

impl Unit {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            _ => return invalid("unit must be hour, day, week or month"),
        })
    }
}
