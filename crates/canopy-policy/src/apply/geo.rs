//! IP and geolocation under the tier (issue #4 items 3 and 8, controls A5, A6): the server
//! looks the IP up before anything is written; the policy decides what of it survives — the
//! IP itself (`drop` | `truncate` | `keep`) and the location up to the tier's level.

use crate::settings::{GeoLevel, IpMode};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Where an IP is, as a GeoIP database says (looked up by the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Geo {
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code without the country (`CA` for California).
    pub region_code: Option<String>,
    /// Subdivision name, as Mixpanel's `$region` shows it.
    pub region: Option<String>,
    pub city: Option<String>,
}

impl Geo {
    /// The jurisdiction the location implies: `US-CA`, `IN-KA`, or the country alone.
    pub fn jurisdiction(&self) -> Option<String> {
        let c = self.country.as_deref()?.to_ascii_uppercase();
        Some(match &self.region_code {
            Some(r) => format!("{c}-{}", r.to_ascii_uppercase()),
            None => c,
        })
    }

    /// Writes Mixpanel's geolocation properties allowed at `level`.
    pub(crate) fn stamp(&self, props: &mut Map<String, Value>, level: GeoLevel) {
        let mut set = |k: &str, v: &Option<String>, needs: GeoLevel| {
            if level >= needs
                && let Some(v) = v
            {
                props.insert(k.into(), Value::String(v.clone()));
            }
        };
        set("mp_country_code", &self.country, GeoLevel::Country);
        set("$region", &self.region, GeoLevel::Region);
        set("$city", &self.city, GeoLevel::City);
    }
}

/// An IP with its host part zeroed: IPv4 /24, IPv6 /48 (what Google Analytics and Plausible
/// call anonymisation).
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
        }
    }
}

/// What of the IP the tier keeps, as the `$ip` property.
pub(crate) fn keep_ip(props: &mut Map<String, Value>, ip: Option<IpAddr>, mode: IpMode) {
    let kept = match (ip, mode) {
        (None, _) | (_, IpMode::Drop) => None,
        (Some(ip), IpMode::Truncate) => Some(truncate_ip(ip)),
        (Some(ip), IpMode::Keep) => Some(ip),
    };
    if let Some(ip) = kept {
        props.insert("$ip".into(), Value::String(ip.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_zeroes_the_host_part() {
        assert_eq!(
            truncate_ip("203.0.113.77".parse().unwrap()).to_string(),
            "203.0.113.0"
        );
        assert_eq!(
            truncate_ip("2001:db8:abcd:12::1".parse().unwrap()).to_string(),
            "2001:db8:abcd::"
        );
    }

    #[test]
    fn the_level_caps_what_is_written() {
        let g = Geo {
            country: Some("US".into()),
            region_code: Some("CA".into()),
            region: Some("California".into()),
            city: Some("San Francisco".into()),
        };
        assert_eq!(g.jurisdiction().as_deref(), Some("US-CA"));
        let mut p = Map::new();
        g.stamp(&mut p, GeoLevel::Country);
        assert_eq!(p.len(), 1);
        let mut p = Map::new();
        g.stamp(&mut p, GeoLevel::None);
        assert!(p.is_empty());
        let mut p = Map::new();
        g.stamp(&mut p, GeoLevel::City);
        assert_eq!(p["$city"], "San Francisco");
    }
}
