//! Starting and stopping a Canopy server on a data dir.

use crate::config::Config;
use anyhow::{Context, Result, bail};
use canopy_control::{ControlKeyring, SqliteControl};
use canopy_crypto::{MasterKey, MasterKeySource};
use canopy_identity::IdentityStore;
use canopy_server::{AppState, MetricsHandle};
use canopy_store::{CheckpointBarrier, Store, StoreConfig};
use canopy_types::SystemClock;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::sync::oneshot;

/// Written to the data dir while a server runs, so CLI commands can find it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ServerFile {
    pub url: String,
    pub pid: u32,
}

pub fn server_file(data_dir: &Path) -> PathBuf {
    data_dir.join("server.json")
}

pub fn admin_token_file(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

fn lock_file(data_dir: &Path) -> PathBuf {
    data_dir.join("LOCK")
}

/// Tries to take the data dir's lock; `None` when another process holds it.
pub fn try_lock(data_dir: &Path) -> Result<Option<File>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_file(data_dir))
        .with_context(|| format!("opening the lock file in {}", data_dir.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking the data dir"),
    }
}

/// Loads the master key: `CANOPY_MASTER_KEY`, else the key file, created on first start only.
pub fn load_master_key(config: &Config) -> Result<MasterKey> {
    if let Ok(hex) = std::env::var("CANOPY_MASTER_KEY") {
        return MasterKey::parse_hex(&hex, MasterKeySource::Env).context("CANOPY_MASTER_KEY");
    }
    let fresh = !config.data_dir.join("control.db").exists();
    if !fresh && !config.master_key_file.exists() {
        bail!(
            "the master key file {} does not exist, but the data dir {} holds data encrypted under a master key; \
             point --master-key-file (or CANOPY_MASTER_KEY) at the key it was created with",
            config.master_key_file.display(),
            config.data_dir.display()
        );
    }
    MasterKey::load_or_create(&config.master_key_file, fresh).context("loading the master key")
}

pub struct Opened {
    pub control: Arc<SqliteControl>,
    pub keyring: Arc<ControlKeyring>,
    pub master_source: MasterKeySource,
}

/// Opens the control plane (which verifies the master key before any data is read).
pub fn open_control(config: &Config) -> Result<Opened> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let master = Arc::new(load_master_key(config)?);
    let master_source = master.source.clone();
    let control = Arc::new(
        SqliteControl::open(&config.data_dir, master).context("opening the control database")?,
    );
    let keyring = Arc::new(ControlKeyring::new(control.clone()));
    Ok(Opened {
        control,
        keyring,
        master_source,
    })
}

static METRICS: OnceLock<Option<MetricsHandle>> = OnceLock::new();

pub struct Running {
    pub url: String,
    pub admin_token: String,
    pub store: Store,
    pub control: Arc<SqliteControl>,
    data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _lock: File,
}

/// Starts a server on `config` (already holding `lock`). `announce` prints where the master
/// key is when it was just generated.
pub async fn start(config: &Config, lock: File, announce: bool) -> Result<Running> {
    let opened = open_control(config)?;
    if let MasterKeySource::Generated(path) = &opened.master_source {
        let msg = format!(
            "\n  ┌─ A new master key was generated: {}\n  │  Everything in {} is encrypted under it. Back it up somewhere safe:\n  └─ without it the data cannot be read.\n",
            path.display(),
            config.data_dir.display()
        );
        if announce {
            eprintln!("{msg}");
        }
        tracing::warn!(key_file = %path.display(), "generated a new master key; back it up");
    }
    let mut store_config = StoreConfig::new(&config.data_dir);
    store_config.buckets = config.buckets;
    store_config.flush_rows = config.flush_rows;
    store_config.flush_interval = config.flush_interval;
    store_config.compaction_min_segments = config.compaction_min_segments;
    store_config.max_segment_rows = config.max_segment_rows;
    store_config.dedup_window = config.dedup_window;
    let identity_path = config.data_dir.join("identity.db");
    let identity = Arc::new(
        IdentityStore::open(&identity_path, opened.keyring.clone())
            .with_context(|| format!("opening {}", identity_path.display()))?,
    );
    // Identity changes must be durable before the WAL that could replay them is deleted.
    let barrier = identity.clone();
    store_config.checkpoint_barrier = Some(CheckpointBarrier(Arc::new(move || {
        barrier.sync().map_err(|e| e.to_string())
    })));
    let keyring = opened.keyring.clone();
    let (store, report) = tokio::task::spawn_blocking(move || {
        Store::open(store_config, keyring, Arc::new(SystemClock))
    })
    .await
    .context("store start-up task")?
    .context("opening the event store")?;
    let replayed = replay_identities(opened.control.as_ref(), &store, &identity)?;
    // Person filters of the segments found on disk, built in the background so the first
    // erasure's verification need not read every segment's person column.
    let warming = store.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match warming.warm_person_filters() {
            Ok(n) => tracing::info!(
                segments = n,
                ms = started.elapsed().as_millis() as u64,
                "person filters built"
            ),
            Err(e) => tracing::warn!(error = %e, "person filters not built; erasures read more"),
        }
    });
    tracing::info!(
        replayed_records = report.records_replayed,
        truncated_bytes = report.bytes_truncated,
        "store recovered"
    );
    let metrics = METRICS
        .get_or_init(|| canopy_server::install_metrics().ok())
        .clone();
    tracing::info!(
        events = replayed,
        "identity replayed over the recovered tail"
    );
    let mut state = AppState::new(
        opened.control.clone(),
        opened.keyring.clone(),
        store.clone(),
        identity,
        Arc::new(SystemClock),
    );
    state.metrics = metrics;
    state.set_query_limits(config.query_memory_limit, config.column_cache);
    state
        .enable_dsr(
            store.clone(),
            opened.keyring.clone(),
            canopy_dsr::DsrConfig {
                cancel_window: config.dsr_cancel_window,
                ..Default::default()
            },
        )
        .context("enabling data-subject requests")?;
    state.opendsr_domain = Arc::new(config.opendsr_domain.clone());
    state.enrichment = Arc::new(canopy_server::enrich::Enrichment {
        geoip: match &config.geoip_db {
            Some(path) => {
                Some(canopy_server::enrich::GeoIp::open(path).map_err(anyhow::Error::msg)?)
            }
            None => None,
        },
        client_ip_header: match &config.client_ip_header {
            Some(h) => Some(
                h.to_ascii_lowercase()
                    .parse()
                    .context("privacy.client_ip_header")?,
            ),
            None => None,
        },
    });
    let admin_token = canopy_control::generate_secret();
    write_private(&admin_token_file(&config.data_dir), admin_token.as_bytes())?;
    state.admin_token = Some(Arc::new(admin_token.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let sf = ServerFile {
        url: url.clone(),
        pid: std::process::id(),
    };
    write_private(
        &server_file(&config.data_dir),
        serde_json::to_string(&sf)?.as_bytes(),
    )?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(canopy_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    tracing::info!(%url, data_dir = %config.data_dir.display(), "canopy is serving");
    Ok(Running {
        url,
        admin_token,
        store,
        control: opened.control,
        data_dir: config.data_dir.clone(),
        shutdown: Some(tx),
        task,
        _lock: lock,
    })
}

impl Running {
    /// Stops accepting requests, drains, flushes the tail to segments and releases the lock.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("server task")??;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.shutdown())
            .await
            .context("flush task")??;
        let _ = std::fs::remove_file(server_file(&self.data_dir));
        let _ = std::fs::remove_file(admin_token_file(&self.data_dir));
        Ok(())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Re-applies identity to the events recovered from the WAL: after a power loss the identity
/// database may lack the last merges their events made (re-applying is idempotent).
fn replay_identities(
    control: &dyn canopy_control::ControlPlane,
    store: &Store,
    identity: &IdentityStore,
) -> Result<usize> {
    let mut n = 0;
    for project in control.list_projects()? {
        let snapshot = store.snapshot(project.id);
        let mut events: Vec<canopy_types::Event> = snapshot
            .tail
            .iter()
            .flat_map(|c| c.events.iter().cloned())
            .collect();
        if events.is_empty() {
            continue;
        }
        let (_, settings) = control.settings(project.id)?;
        let opts = canopy_identity::ResolveOptions {
            mode: settings.id_merge,
            allow_merge: true,
            replay: true,
        };
        n += events.len();
        identity.resolve_events(project.id, opts, &mut events, 0)?;
    }
    Ok(n)
}
