//! Enrichment at ingest, before the policy (issue #4 item 8): where the event's IP is, from a
//! MaxMind-format database named in the config (`maxminddb`), and what browser and OS the
//! request's user agent names (`woothee`). The IP and the user agent themselves are never
//! stored; what is derived passes through the policy like any property (no city for a child,
//! nothing when a tier's geolocation is `none`).

use canopy_policy::Geo;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::LazyLock;

/// How the server learns where a request comes from.
#[derive(Debug, Default)]
pub struct Enrichment {
    /// The GeoIP database named in the config.
    pub geoip: Option<GeoIp>,
    /// A header set by a trusted reverse proxy naming the client (`X-Forwarded-For`: its
    /// first address). Without it, the TCP peer is the client.
    pub client_ip_header: Option<axum::http::HeaderName>,
}

impl Enrichment {
    /// The client's address for a request.
    pub fn client_ip(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Option<IpAddr> {
        let Some(h) = &self.client_ip_header else {
            return peer;
        };
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// A GeoIP database loaded in memory.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeoIp(..)")
    }
}

#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: BTreeMap<&'a str, &'a str>,
}

/// The fields of a GeoIP2/GeoLite2 City (or Country) record Canopy reads.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Place<'a>>,
    #[serde(borrow, default)]
    subdivisions: Vec<Place<'a>>,
    #[serde(borrow, default)]
    city: Option<Place<'a>>,
}

impl GeoIp {
    /// Opens the database at `path`; the error names the file but never an address.
    pub fn open(path: &Path) -> Result<Self, String> {
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| format!("GeoIP database {}: {e}", path.display()))?;
        Ok(Self { reader })
    }

    /// Where `ip` is; `None` when the database does not know it (private ranges, gaps).
    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        let found = self.reader.lookup(ip).ok()?;
        let rec: Record<'_> = found.decode().ok()??;
        let name = |p: &Place<'_>| p.names.get("en").map(|s| s.to_string());
        let region = rec.subdivisions.first();
        let geo = Geo {
            country: rec
                .country
                .as_ref()
                .and_then(|c| c.iso_code)
                .map(str::to_string),
            region_code: region.and_then(|r| r.iso_code).map(str::to_string),
            region: region.and_then(name),
            city: rec.city.as_ref().and_then(name),
        };
        geo.country.is_some().then_some(geo)
    }
}

static UA: LazyLock<woothee::parser::Parser> = LazyLock::new(woothee::parser::Parser::new);

/// Mixpanel's default browser and OS properties derived from a user agent, for events that do
/// not carry them (server-side SDKs, pixels). Crawlers and unknown agents give nothing.
pub fn user_agent_properties(ua: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(r) = UA.parse(ua) else {
        return out;
    };
    if !matches!(r.category, "pc" | "smartphone" | "mobilephone") {
        return out;
    }
    let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;
    if known(r.name) {
        out.insert("$browser".into(), Value::String(r.name.to_string()));
        let major = r
            .version
            .split('.')
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(v) = major {
            out.insert("$browser_version".into(), Value::from(v));
        }
    }
    let (os, device) = match r.os {
        "iPhone" | "iPad" | "iPod" => ("iOS", Some(r.os)),
        "Mac OSX" => ("Mac OS X", None),
        os if os.starts_with("Windows") => ("Windows", None),
        os => (os, None),
    };
    if known(os) {
        out.insert("$os".into(), Value::String(os.to_string()));
    }
    if let Some(d) = device {
        out.insert("$device".into(), Value::String(d.to_string()));
    }
    out
}

/// Adds the derived properties the event lacks.
pub fn add_user_agent(props: &mut Map<String, Value>, derived: &Map<String, Value>) {
    if props.contains_key("$browser") || props.contains_key("$os") {
        return;
    }
    for (k, v) in derived {
        props.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_phones_are_recognized_and_scripts_are_not() {
        let chrome = user_agent_properties(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(chrome["$browser"], "Chrome");
        assert_eq!(chrome["$browser_version"], 120);
        assert_eq!(chrome["$os"], "Windows");
        let iphone = user_agent_properties(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(iphone["$os"], "iOS");
        assert_eq!(iphone["$device"], "iPhone");
        assert!(user_agent_properties("python-requests/2.32.3").is_empty());
        assert!(
            user_agent_properties("Googlebot/2.1 (+http://www.google.com/bot.html)").is_empty()
        );
    }

    /// Builds the test database with MaxMind's Perl writer (installed by scripts/test-all).
    pub(crate) fn test_mmdb(dir: &Path) -> std::path::PathBuf {
        let out = dir.join("test.mmdb");
        let script = canopy_types::crate_dir!().join("../../tests/geoip/make-test-mmdb.pl");
        let status = std::process::Command::new("perl")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("perl");
        assert!(
            status.success(),
            "libmaxmind-db-writer-perl missing? run scripts/test-all"
        );
        out
    }

    #[test]
    fn geoip_lookups_read_a_database_written_by_maxminds_own_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = GeoIp::open(&test_mmdb(dir.path())).unwrap();
        let g = db.lookup("203.0.113.77".parse().unwrap()).unwrap();
        assert_eq!(g.jurisdiction().as_deref(), Some("US-CA"));
        assert_eq!(g.city.as_deref(), Some("San Francisco"));
        let g = db.lookup("198.51.100.1".parse().unwrap()).unwrap();
        assert_eq!(
            (g.country.as_deref(), g.region.as_deref()),
            (Some("IN"), Some("Karnataka"))
        );
        let g = db.lookup("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(g.jurisdiction().as_deref(), Some("DE-BE"));
        assert_eq!(db.lookup("10.1.2.3".parse().unwrap()), None);
        let err = GeoIp::open(&dir.path().join("missing.mmdb")).unwrap_err();
        assert!(err.contains("missing.mmdb"));
    }

    #[test]
    fn client_properties_win_over_the_user_agent() {
        let mut props = Map::new();
        props.insert("$os".into(), "Android".into());
        add_user_agent(
            &mut props,
            &user_agent_properties("Mozilla/5.0 (Windows NT 10.0) Chrome/120.0"),
        );
        assert_eq!(props.len(), 1);
    }
}
