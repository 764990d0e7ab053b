//! Configuration: a TOML file says *what* (data dir, listen address, storage tuning); flags and
//! `CANOPY_*` environment variables override it. Everything is validated at start.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATA_DIR: &str = "./canopy-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The config file (version 1).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub version: Option<u32>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub master_key_file: Option<PathBuf>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub query: QueryConfig,
    #[serde(default)]
    pub dsr: DsrFileConfig,
}

/// Data-subject requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DsrFileConfig {
    /// Seconds a request waits before it runs, during which it can be cancelled (default 0).
    pub cancel_window_secs: u64,
    /// The domain OpenDSR responses and callbacks name (`X-OpenDSR-Processor-Domain`).
    pub opendsr_domain: Option<String>,
}

/// Query execution limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// The most memory one query's operators (hash tables, sorts) may hold, in MiB; a query
    /// that needs more fails with a clear error (nothing spills to disk).
    pub memory_limit_mb: usize,
    /// Decoded segment columns kept in memory between queries, in MiB (least recently used
    /// out first; cleared by every erasure or other rewrite). `0` turns the cached-column
    /// engine off, so every query decrypts and decodes the segments it reads.
    pub column_cache_mb: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit_mb: canopy_query::DEFAULT_QUERY_MEMORY >> 20,
            column_cache_mb: canopy_query::DEFAULT_COLUMN_CACHE >> 20,
        }
    }
}

/// Server-wide privacy inputs (per-project rules live in the project settings).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// A MaxMind-format (`.mmdb`) GeoIP City or Country database.
    pub geoip_db: Option<PathBuf>,
    /// Header a trusted reverse proxy sets to the client address (e.g. `X-Forwarded-For`).
    pub client_ip_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Person buckets per month; fixed when the data dir is created.
    pub buckets: u32,
    pub flush_rows: usize,
    pub flush_interval_secs: u64,
    pub compaction_min_segments: usize,
    pub max_segment_rows: u64,
    pub dedup_window_hours: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            buckets: 16,
            flush_rows: 200_000,
            flush_interval_secs: 10,
            compaction_min_segments: 4,
            max_segment_rows: 131_072,
            dedup_window_hours: 24,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `canopy=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Flags (each also readable from its `CANOPY_*` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerFlags {
    /// TOML configuration file.
    #[arg(long, env = "CANOPY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where Canopy keeps its data [default: ./canopy-data].
    #[arg(long, env = "CANOPY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CANOPY_LISTEN")]
    pub listen: Option<String>,
    /// Master key file; must live outside the data dir [default: <data-dir>.master.key].
    /// CANOPY_MASTER_KEY (64 hex characters) takes precedence over any file.
    #[arg(long, env = "CANOPY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// MaxMind-format GeoIP database for country / region / city under the privacy policy.
    #[arg(long, env = "CANOPY_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub master_key_file: PathBuf,
    pub buckets: u32,
    pub flush_rows: usize,
    pub flush_interval: Duration,
    pub compaction_min_segments: usize,
    pub max_segment_rows: u64,
    pub dedup_window: Duration,
    pub log_format: String,
    pub log_level: String,
    pub geoip_db: Option<PathBuf>,
    pub client_ip_header: Option<String>,
    pub query_memory_limit: usize,
    pub column_cache: usize,
    pub dsr_cancel_window: Duration,
    pub opendsr_domain: String,
}

impl Config {
    pub fn load(flags: &ServerFlags) -> Result<Config> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let f: FileConfig = toml::from_str(&text)
                    .with_context(|| format!("config file {} is invalid", path.display()))?;
                if f.version.unwrap_or(1) != 1 {
                    bail!("config file {}: version must be 1", path.display());
                }
                f
            }
            None => FileConfig::default(),
        };
        let data_dir = flags
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let listen_text = flags
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("listen address {listen_text:?} is not host:port (e.g. 127.0.0.1:8080)")
        })?;
        let master_key_file = flags
            .master_key_file
            .clone()
            .or(file.master_key_file)
            .unwrap_or_else(|| default_key_path(&data_dir));
        let s = file.storage;
        if !(1..=1024).contains(&s.buckets) {
            bail!(
                "storage.buckets must be between 1 and 1024 (got {})",
                s.buckets
            );
        }
        if s.flush_rows < 1000 {
            bail!(
                "storage.flush_rows must be at least 1000 (got {})",
                s.flush_rows
            );
        }
        if s.flush_interval_secs == 0 || s.flush_interval_secs > 3600 {
            bail!("storage.flush_interval_secs must be between 1 and 3600");
        }
        if s.compaction_min_segments < 2 {
            bail!("storage.compaction_min_segments must be at least 2");
        }
        if let Some(h) = &file.privacy.client_ip_header
            && axum_header_name_invalid(h)
        {
            bail!("privacy.client_ip_header {h:?} is not a valid HTTP header name");
        }
        if !["text", "json"].contains(&file.log.format.as_str()) {
            bail!(
                "log.format must be \"text\" or \"json\" (got {:?})",
                file.log.format
            );
        }
        let config = Config {
            data_dir,
            listen,
            master_key_file,
            buckets: s.buckets,
            flush_rows: s.flush_rows,
            flush_interval: Duration::from_secs(s.flush_interval_secs),
            compaction_min_segments: s.compaction_min_segments,
            max_segment_rows: s.max_segment_rows.max(1_000),
            dedup_window: Duration::from_secs(s.dedup_window_hours.clamp(1, 24 * 30) * 3600),
            log_format: file.log.format,
            log_level: file.log.level,
            geoip_db: flags.geoip_db.clone().or(file.privacy.geoip_db),
            client_ip_header: file.privacy.client_ip_header,
            query_memory_limit: file.query.memory_limit_mb.max(16) << 20,
            column_cache: file.query.column_cache_mb << 20,
            dsr_cancel_window: Duration::from_secs(file.dsr.cancel_window_secs.min(30 * 86_400)),
            opendsr_domain: file
                .dsr
                .opendsr_domain
                .unwrap_or_else(|| "localhost".into()),
        };
        config.check_paths()?;
        Ok(config)
    }

    fn check_paths(&self) -> Result<()> {
        if self.data_dir.is_file() {
            bail!("data dir {} is a file", self.data_dir.display());
        }
        let dir = absolute(&self.data_dir);
        let key = absolute(&self.master_key_file);
        if key.starts_with(&dir) {
            bail!(
                "the master key file {} is inside the data dir {}; keep it elsewhere, or a copy of the data dir would carry its own key",
                self.master_key_file.display(),
                self.data_dir.display()
            );
        }
        Ok(())
    }
}

/// `<data dir>.master.key`, beside (never inside) the data dir.
pub fn default_key_path(data_dir: &Path) -> PathBuf {
    let mut s = data_dir.as_os_str().to_owned();
    let trimmed = s.to_string_lossy().trim_end_matches('/').to_string();
    s = trimmed.into();
    s.push(".master.key");
    PathBuf::from(s)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn axum_header_name_invalid(h: &str) -> bool {
    h.is_empty()
        || !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::load(&ServerFlags::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.master_key_file, PathBuf::from("./canopy-data.master.key"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9\"\n[storage]\nbuckets = 8\n").unwrap();
        let flags = ServerFlags {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:7".into()),
            ..Default::default()
        };
        let c = Config::load(&flags).unwrap();
        assert_eq!((c.listen.port(), c.buckets), (7, 8));
    }

    #[test]
    fn invalid_settings_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let cases = [
            ("listen = \"nope\"", "not host:port"),
            ("[storage]\nbuckets = 0", "buckets"),
            ("bogus = 1", "unknown field"),
            ("[log]\nformat = \"xml\"", "log.format"),
        ];
        for (text, needle) in cases {
            std::fs::write(&path, text).unwrap();
            let flags = ServerFlags {
                config: Some(path.clone()),
                ..Default::default()
            };
            let err = format!("{:#}", Config::load(&flags).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
        let flags = ServerFlags {
            data_dir: Some(dir.path().into()),
            master_key_file: Some(dir.path().join("k")),
            ..Default::default()
        };
        assert!(format!("{:#}", Config::load(&flags).unwrap_err()).contains("inside the data dir"));
    }
}
