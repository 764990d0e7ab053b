//! [`IdentityStore`]: the identity graphs of all projects, kept in memory (loaded from SQLite
//! on first use) and written through on every change. One lock per project serializes its
//! merges, so concurrent clients end in the same clusters as some sequential order of their
//! requests; the SQLite commit happens under that lock, so memory and disk never disagree.

use crate::Result;
use crate::graph::{Change, Graph};
use crate::hints::{Hints, hints};
use crate::keys::ProjectSecrets;
use crate::sqlite::IdentityDb;
use canopy_crypto::ProjectKeyring;
use canopy_types::{Event, IdMergeMode, PersonKey, ProfileTarget, ProfileUpdate, ProjectId};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Decrypted display ids kept in memory at most (then the cache starts over).
const DISPLAY_CACHE: usize = 200_000;

#[derive(Debug, Clone, Copy)]
pub struct ResolveOptions {
    pub mode: IdMergeMode,
    /// `$merge` is honoured (authenticated `/import` only).
    pub allow_merge: bool,
    /// Re-applying events replayed from the WAL after a restart: nothing is counted twice.
    pub replay: bool,
}

/// What one call did, for metrics and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveStats {
    pub lookups: usize,
    pub registered: usize,
    pub merges: usize,
    pub refused: usize,
}

/// Stored key → current person key, and the graph version it was built from.
type AliasSnapshot = (u64, Arc<HashMap<u64, u64>>);

struct ProjectIdentity {
    secrets: ProjectSecrets,
    graph: Mutex<Graph>,
    aliases: Mutex<Option<AliasSnapshot>>,
}

pub struct IdentityStore {
    db: Mutex<IdentityDb>,
    keyring: Arc<dyn ProjectKeyring>,
    projects: RwLock<HashMap<ProjectId, Arc<ProjectIdentity>>>,
    display: Mutex<HashMap<(ProjectId, u64), Arc<str>>>,
}

impl std::fmt::Debug for IdentityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityStore")
    }
}

impl IdentityStore {
    pub fn open(path: &Path, keyring: Arc<dyn ProjectKeyring>) -> Result<Self> {
        Ok(Self::with_db(IdentityDb::open(path)?, keyring))
    }

    pub fn in_memory(keyring: Arc<dyn ProjectKeyring>) -> Result<Self> {
        Ok(Self::with_db(IdentityDb::open_in_memory()?, keyring))
    }

    fn with_db(db: IdentityDb, keyring: Arc<dyn ProjectKeyring>) -> Self {
        Self {
            db: Mutex::new(db),
            keyring,
            projects: RwLock::default(),
            display: Mutex::default(),
        }
    }

    fn project(&self, project: ProjectId) -> Result<Arc<ProjectIdentity>> {
        if let Some(p) = self.projects.read().get(&project) {
            return Ok(p.clone());
        }
        let key = self.keyring.project_key(project.0)?;
        let rows = self.db.lock().load(project)?;
        let loaded = Arc::new(ProjectIdentity {
            secrets: ProjectSecrets::derive(&key),
            graph: Mutex::new(Graph::load(rows)),
            aliases: Mutex::new(None),
        });
        Ok(self
            .projects
            .write()
            .entry(project)
            .or_insert(loaded)
            .clone())
    }

    /// Persists `changes`; on failure forgets the project's in-memory graph so the next call
    /// reloads what is really on disk.
    fn persist(
        &self,
        project: ProjectId,
        p: &ProjectIdentity,
        changes: &[Change],
        now_ms: i64,
    ) -> Result<()> {
        let r = self.db.lock().write(project, &p.secrets, changes, now_ms);
        if r.is_err() {
            self.projects.write().remove(&project);
        }
        r
    }

    /// Resolves each event's distinct_id and person key, applying the merges it asks for.
    pub fn resolve_events(
        &self,
        project: ProjectId,
        opts: ResolveOptions,
        events: &mut [Event],
        now_ms: i64,
    ) -> Result<ResolveStats> {
        let p = self.project(project)?;
        let mut stats = ResolveStats::default();
        let mut changes = Vec::new();
        // A batch mostly repeats a few people's ids: hash each raw id once per batch.
        let mut memo: HashMap<String, PersonKey> = HashMap::new();
        let mut id_key = |raw: &str| -> PersonKey {
            if let Some(k) = memo.get(raw) {
                return *k;
            }
            let k = p.secrets.id_key(raw);
            memo.insert(raw.to_string(), k);
            k
        };
        let mut g = p.graph.lock();
        let (mut last_ops, mut last_version) = (Vec::new(), u64::MAX);
        for e in events.iter_mut() {
            let Hints {
                distinct_id,
                identified,
                ops,
            } = hints(opts.mode, e, opts.allow_merge);
            // Events of one session repeat the same link: re-applying it while nothing changed
            // is a no-op (merges are idempotent), so skip the work.
            let repeat = !ops.is_empty() && ops == last_ops && g.version() == last_version;
            if !repeat {
                for op in &ops {
                    let before = g.version();
                    let mut key = |g: &mut Graph, raw: &str, ch: &mut Vec<Change>| {
                        let k = id_key(raw);
                        g.register(k, raw, ch);
                        k.0
                    };
                    match g.apply(op, &mut key, &mut changes) {
                        Ok(()) => stats.merges += usize::from(g.version() != before),
                        Err(reason) => {
                            stats.refused += 1;
                            if !opts.replay {
                                metrics::counter!("canopy_identity_refused_total", "reason" => reason)
                                    .increment(1);
                            }
                        }
                    }
                }
            }
            let k = id_key(&distinct_id);
            g.register(k, &distinct_id, &mut changes);
            // After the registration: the persisted flag updates an existing row.
            if !repeat && let Some(u) = identified {
                g.mark_identified(id_key(&u), &mut changes);
            }
            stats.lookups += 1;
            e.person = PersonKey(g.person(k.0));
            e.distinct_id = distinct_id;
            last_ops = ops;
            last_version = g.version();
        }
        stats.registered = changes
            .iter()
            .filter(|c| matches!(c, Change::Register { .. }))
            .count();
        self.persist(project, &p, &changes, now_ms)?;
        drop(g);
        Ok(stats)
    }

    /// Resolves whose profile each update changes. `$ignore_alias` keeps the id's own key.
    pub fn resolve_profiles(
        &self,
        project: ProjectId,
        updates: &mut [ProfileUpdate],
        now_ms: i64,
    ) -> Result<ResolveStats> {
        let p = self.project(project)?;
        let mut stats = ResolveStats::default();
        let mut changes = Vec::new();
        let mut g = p.graph.lock();
        for u in updates.iter_mut() {
            stats.lookups += 1;
            u.person = match &u.target {
                ProfileTarget::User { distinct_id } => {
                    let k = p.secrets.id_key(distinct_id);
                    g.register(k, distinct_id, &mut changes);
                    let ignore_alias = u
                        .modifiers
                        .get("$ignore_alias")
                        .is_some_and(|v| v.as_bool() == Some(true));
                    if ignore_alias {
                        k
                    } else {
                        PersonKey(g.person(k.0))
                    }
                }
                ProfileTarget::Group {
                    group_key,
                    group_id,
                } => group_person(&p.secrets, group_key, group_id),
            };
        }
        stats.registered = changes.len();
        self.persist(project, &p, &changes, now_ms)?;
        drop(g);
        Ok(stats)
    }

    /// The person of a raw id, if the id was ever seen.
    pub fn lookup(&self, project: ProjectId, raw: &str) -> Result<Option<PersonKey>> {
        let p = self.project(project)?;
        let k = p.secrets.id_key(raw);
        let g = p.graph.lock();
        Ok(g.is_known(k.0).then(|| PersonKey(g.person(k.0))))
    }

    /// Has the project any identity at all?
    pub fn lookup_any(&self, project: ProjectId) -> Result<bool> {
        Ok(self.project(project)?.graph.lock().has_ids())
    }

    /// The key a group profile is stored under.
    pub fn group_key(
        &self,
        project: ProjectId,
        group_key: &str,
        group_id: &str,
    ) -> Result<PersonKey> {
        Ok(group_person(
            &self.project(project)?.secrets,
            group_key,
            group_id,
        ))
    }

    /// The id keys of the person's cluster (its own first): every key its events and profile
    /// updates can be stored under.
    pub fn cluster_keys(&self, project: ProjectId, person: PersonKey) -> Result<Vec<u64>> {
        Ok(self.project(project)?.graph.lock().cluster(person.0))
    }

    /// Every raw id of the person's cluster, canonical first.
    pub fn cluster_ids(&self, project: ProjectId, person: PersonKey) -> Result<Vec<String>> {
        let p = self.project(project)?;
        let ids = p.graph.lock().cluster(person.0);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(raw) = self.raw(project, &p, id)? {
                out.push(raw.to_string());
            }
        }
        Ok(out)
    }

    /// The distinct_id to show for each person: its canonical raw id.
    pub fn display_ids(
        &self,
        project: ProjectId,
        persons: &[u64],
    ) -> Result<HashMap<u64, Arc<str>>> {
        let p = self.project(project)?;
        let mut out = HashMap::with_capacity(persons.len());
        for &person in persons {
            if out.contains_key(&person) {
                continue;
            }
            let raw = self
                .raw(project, &p, person)?
                .unwrap_or_else(|| Arc::from(""));
            out.insert(person, raw);
        }
        Ok(out)
    }

    fn raw(&self, project: ProjectId, p: &ProjectIdentity, id: u64) -> Result<Option<Arc<str>>> {
        if id == 0 {
            return Ok(None);
        }
        if let Some(s) = self.display.lock().get(&(project, id)) {
            return Ok(Some(s.clone()));
        }
        let Some(sealed) = self.db.lock().sealed(project, PersonKey(id))? else {
            return Ok(None);
        };
        let raw: Arc<str> = Arc::from(p.secrets.open(project, PersonKey(id), &sealed)?);
        let mut cache = self.display.lock();
        if cache.len() >= DISPLAY_CACHE {
            cache.clear();
        }
        cache.insert((project, id), raw.clone());
        Ok(Some(raw))
    }

    /// Stored person key → current person key, for every id that was merged away from its
    /// own key. Rebuilt only when the graph changed since the last call.
    pub fn aliases(&self, project: ProjectId) -> Result<Arc<HashMap<u64, u64>>> {
        let p = self.project(project)?;
        let g = p.graph.lock();
        let mut cached = p.aliases.lock();
        if let Some((v, map)) = cached.as_ref()
            && *v == g.version()
        {
            return Ok(map.clone());
        }
        let map = Arc::new(g.aliases());
        *cached = Some((g.version(), map.clone()));
        Ok(map)
    }

    /// Erases the identity clusters of `persons` (current person keys): every id row, sealed raw
    /// id included, is deleted and purged from SQLite's WAL; the in-memory graph, alias map and
    /// display cache forget them. Returns the erased id keys.
    pub fn forget_clusters(&self, project: ProjectId, persons: &[u64]) -> Result<Vec<u64>> {
        let p = self.project(project)?;
        let mut g = p.graph.lock();
        let mut changes = Vec::new();
        let mut erased = Vec::new();
        for person in persons {
            if g.is_known(*person) || g.person(*person) != *person {
                erased.extend(g.forget_cluster(*person, &mut changes));
            }
        }
        self.persist(project, &p, &changes, 0)?;
        drop(g);
        self.db.lock().purge_wal()?;
        self.display
            .lock()
            .retain(|(proj, id), _| *proj != project || !erased.contains(id));
        Ok(erased)
    }

    /// Every raw id the project holds, decrypted — for audits that must prove an id is gone
    /// (`canopy dsr find-residue`), never for request paths.
    pub fn all_raw_ids(&self, project: ProjectId) -> Result<Vec<String>> {
        let p = self.project(project)?;
        let sealed = self.db.lock().all_sealed(project)?;
        sealed
            .into_iter()
            .map(|(id, s)| p.secrets.open(project, PersonKey(id), &s))
            .collect()
    }

    /// Makes every identity change so far durable against an OS crash.
    pub fn sync(&self) -> Result<()> {
        self.db.lock().sync()
    }
}

fn group_person(secrets: &ProjectSecrets, group_key: &str, group_id: &str) -> PersonKey {
    secrets.id_key(&format!("$group:{group_key}:{group_id}"))
}
