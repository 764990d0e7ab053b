//! A project's events (or profile updates) as a DataFusion table.

use crate::hot::{ColumnCache, DEFAULT_COLUMN_CACHE};
use crate::identity_udf::{DisplayId, ResolvePerson};
use crate::keys::SegmentKeys;
use crate::profiles::Profiles;
use crate::tail::{align, chunk_batch};
use crate::{QueryError, Result};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use canopy_identity::IdentityStore;
use canopy_store::{SegmentMeta, Snapshot, Store, Table, segment_decryption_properties};
use canopy_types::ProjectId;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SessionConfig, SessionContext, ident};
use object_store::path::Path as ObjectPath;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Materialized profiles and the signature of the data they came from.
type CachedProfiles = (u64, Arc<Profiles>);

/// Builds query contexts over the store.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    store: Store,
    identity: Arc<IdentityStore>,
    target_partitions: usize,
    /// Materialized profiles per project, with the signature of the data they came from.
    profile_cache: Arc<Mutex<HashMap<ProjectId, CachedProfiles>>>,
    /// Shared across queries: DataFusion's cache of segment footers (decrypted metadata), so
    /// a query does not re-read and re-decrypt every segment's footer.
    runtime: Arc<RuntimeEnv>,
    /// The most memory one query's operators (hash tables, sorts) may hold.
    memory_limit: usize,
    /// Decoded segment columns kept between queries; `None`: every query goes through
    /// DataFusion over the Parquet segments.
    column_cache: Option<Arc<ColumnCache>>,
}

/// The caches every query shares. Spilling to disk is off: a spill file would hold
/// decrypted events outside the encrypted segments, so a query over its memory limit fails.
fn shared_runtime() -> Arc<RuntimeEnv> {
    RuntimeEnvBuilder::new()
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .unwrap_or_else(|_| Arc::new(RuntimeEnv::default()))
}

/// `from_ms <= time < to_ms`, the range filter every report applies to events.
pub(crate) fn time_between(from_ms: i64, to_ms: i64) -> Expr {
    let ts = |ms: i64| {
        datafusion::prelude::lit(datafusion::common::ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    };
    let time = || datafusion::prelude::col("time");
    time().gt_eq(ts(from_ms)).and(time().lt(ts(to_ms)))
}

/// The column names of a plan's output (what property and `where` expressions can read).
pub(crate) fn column_names(df: &datafusion::prelude::DataFrame) -> Vec<String> {
    df.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Default bound on one query's operator memory.
pub const DEFAULT_QUERY_MEMORY: usize = 4 << 30;

impl QueryEngine {
    pub fn new(store: Store, identity: Arc<IdentityStore>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            store,
            identity,
            target_partitions: cores,
            profile_cache: Arc::default(),
            runtime: shared_runtime(),
            memory_limit: DEFAULT_QUERY_MEMORY,
            column_cache: Some(Arc::new(ColumnCache::new(DEFAULT_COLUMN_CACHE))),
        }
    }

    /// Bounds the column cache; `0` turns the cached-column engine off (every query goes
    /// through DataFusion over the segments).
    pub fn with_column_cache(mut self, bytes: usize) -> Self {
        self.column_cache = (bytes > 0).then(|| Arc::new(ColumnCache::new(bytes)));
        self
    }

    pub(crate) fn column_cache_enabled(&self) -> bool {
        self.column_cache.is_some()
    }

    /// The column cache (a budget-less one when the engine is off, so nothing is kept).
    pub(crate) fn column_cache(&self) -> Arc<ColumnCache> {
        self.column_cache
            .clone()
            .unwrap_or_else(|| Arc::new(ColumnCache::new(0)))
    }

    /// Bytes of decoded columns held between queries.
    pub fn column_cache_bytes(&self) -> usize {
        self.column_cache.as_ref().map_or(0, |c| c.bytes())
    }

    /// Bounds each query's operator memory; a query that needs more fails with
    /// [`QueryError::TooLarge`] instead of exhausting the machine.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes.max(1 << 20);
        self
    }

    /// A runtime for one query: its own memory pool, the shared caches.
    fn query_runtime(&self) -> Arc<RuntimeEnv> {
        let shared = &self.runtime;
        Arc::new(RuntimeEnv {
            memory_pool: Arc::new(GreedyMemoryPool::new(self.memory_limit)),
            disk_manager: shared.disk_manager.clone(),
            cache_manager: shared.cache_manager.clone(),
            object_store_registry: shared.object_store_registry.clone(),
            parquet_encryption_factory_registry: shared.parquet_encryption_factory_registry.clone(),
        })
    }

    /// Identifies the profile data of a project: its profile segments, its tail, its merges.
    pub(crate) fn profile_signature(
        &self,
        project: ProjectId,
        aliases: &Arc<HashMap<u64, u64>>,
    ) -> u64 {
        use std::hash::{Hash, Hasher};
        let snapshot = self.store.snapshot(project);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for s in &snapshot.segments {
            if s.partition.table == Table::ProfileUpdates {
                s.id.hash(&mut h);
            }
        }
        for c in &snapshot.tail {
            (Arc::as_ptr(c) as usize, c.profiles.len()).hash(&mut h);
        }
        (Arc::as_ptr(aliases) as usize).hash(&mut h);
        h.finish()
    }

    pub(crate) fn cached_profiles(
        &self,
        project: ProjectId,
        signature: u64,
    ) -> Option<Arc<Profiles>> {
        let cache = self.profile_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&project)
            .filter(|(s, _)| *s == signature)
            .map(|(_, p)| p.clone())
    }

    pub(crate) fn cache_profiles(
        &self,
        project: ProjectId,
        signature: u64,
        profiles: Arc<Profiles>,
    ) {
        let mut cache = self.profile_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(project, (signature, profiles));
    }

    /// Forgets everything cached from stored data: materialized profiles, decoded columns and
    /// the decrypted segment footers (whose statistics hold column values). Called after
    /// every rewrite (erasure, retention, rectification, clean-up).
    pub fn clear_caches(&self) {
        if let Some(c) = &self.column_cache {
            c.clear();
        }
        self.profile_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let caches = &self.runtime.cache_manager;
        caches.get_file_metadata_cache().clear();
        if let Some(c) = caches.get_file_statistic_cache() {
            c.clear();
        }
        if let Some(c) = caches.get_list_files_cache() {
            c.clear();
        }
    }

    /// The most memory one query may hold (operators and collected rows).
    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// Parallelism of scans and per-person evaluation (the machine's cores).
    pub fn target_partitions(&self) -> usize {
        self.target_partitions
    }

    pub fn identity(&self) -> &Arc<IdentityStore> {
        &self.identity
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A session with `events` and `profile_updates` registered for `project`, over a snapshot
    /// restricted to segments overlapping `[from_ms, to_ms)` (when given). Both are views over
    /// the stored tables (`events_stored`, `profile_updates_stored`) in which `person` is the
    /// person's current key and `distinct_id` its canonical id.
    pub fn context(
        &self,
        project: ProjectId,
        time_range: Option<(i64, i64)>,
    ) -> Result<SessionContext> {
        let config = SessionConfig::new()
            .with_target_partitions(self.target_partitions)
            .with_batch_size(32 * 1024)
            .set_bool(
                "datafusion.optimizer.enable_leaf_expression_pushdown",
                false,
            )
            // The scan gets the time and event predicates to prune row groups by their
            // statistics, but not to filter rows while decoding: in person-sorted segments an
            // event's rows are scattered, and late materialization measured slower (1.8x on the
            // breakdown benchmark) than decoding the few projected columns whole.
            .set_bool("datafusion.execution.parquet.pushdown_filters", false);
        let ctx = SessionContext::new_with_config_rt(config, self.query_runtime());
        let mut snapshot = self.store.snapshot(project);
        if let Some((from, to)) = time_range {
            snapshot
                .segments
                .retain(|s| s.max_time_ms >= from && s.min_time_ms < to);
        }
        let resolve = ResolvePerson::udf(self.identity.aliases(project)?);
        let display = DisplayId::udf(self.identity.clone(), project);
        for table in Store::tables() {
            let provider = Arc::new(CanopyTable::new(&self.store, &snapshot, table)?);
            ctx.register_table(format!("{}_stored", table.as_str()), provider.clone())?;
            let mut columns = Vec::new();
            for f in provider.schema().fields() {
                if f.name() == "person" {
                    let person = resolve.call(vec![ident("person")]);
                    columns.push(person.clone().alias("person"));
                    columns.push(display.call(vec![person]).alias("distinct_id"));
                } else {
                    columns.push(ident(f.name()));
                }
            }
            let view = ctx.read_table(provider)?.select(columns)?.into_view();
            ctx.register_table(table.as_str(), view)?;
        }
        ctx.register_udf(resolve);
        ctx.register_udf(display);
        Ok(ctx)
    }
}

/// One table of one project, frozen at a snapshot.
#[derive(Debug)]
pub struct CanopyTable {
    schema: SchemaRef,
    /// (absolute path, size) of each segment file.
    files: Vec<(String, u64)>,
    keys: Arc<SegmentKeys>,
    tail: Vec<arrow::record_batch::RecordBatch>,
}

impl CanopyTable {
    pub fn new(store: &Store, snapshot: &Snapshot, table: Table) -> Result<Self> {
        let segments: Vec<&Arc<SegmentMeta>> = snapshot
            .segments
            .iter()
            .filter(|s| s.partition.table == table)
            .collect();
        let mut schemas = Vec::new();
        let mut files = Vec::new();
        let mut by_path = HashMap::new();
        for s in &segments {
            schemas.push(store.segment_schema(s)?);
            let path = store.segment_path(s);
            let path = path.canonicalize().unwrap_or(path);
            let text = path.to_string_lossy().into_owned();
            let key = store.segment_key(s)?;
            by_path.insert(
                ObjectPath::from(text.as_str()),
                segment_decryption_properties(&key, s.id)?,
            );
            files.push((text, s.bytes));
        }
        let mut tail_raw = Vec::new();
        let mut next_seq = canopy_store::TAIL_SEQ_BASE;
        for chunk in &snapshot.tail {
            if let Some(b) = chunk_batch(chunk, table, &mut next_seq)? {
                schemas.push(b.schema());
                tail_raw.push(b);
            }
        }
        let mut schema = merge_schemas(&schemas, table);
        if table == Table::Events {
            schema = with_string_views(&schema);
        }
        let tail = tail_raw
            .iter()
            .map(|b| align(b, &schema))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            schema,
            files,
            keys: Arc::new(SegmentKeys::new(
                by_path,
                segments.into_iter().cloned().collect(),
            )),
            tail,
        })
    }
}

/// Event text columns as `Utf8View`: DataFusion's Parquet reader decodes strings into views
/// (`schema_force_view_types`), and a table typed `Utf8` would make it copy every string into
/// a new array. (Profile updates stay `Utf8`: their decoder in `canopy-store` expects it.)
fn with_string_views(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The union of segment schemas: fixed columns first, then typed properties by name. A
/// property typed differently in different segments is read as text.
fn merge_schemas(schemas: &[SchemaRef], table: Table) -> SchemaRef {
    let base = match table {
        Table::Events => canopy_store::events_to_batch(&[]).map(|b| b.schema()),
        Table::ProfileUpdates => canopy_store::profiles_to_batch(&[]).map(|b| b.schema()),
    };
    let base = base.unwrap_or_else(|_| Arc::new(Schema::empty()));
    let fixed: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut props: BTreeMap<String, DataType> = BTreeMap::new();
    for s in schemas {
        for f in s.fields() {
            if base.field_with_name(f.name()).is_ok() {
                continue;
            }
            props
                .entry(f.name().clone())
                .and_modify(|t| {
                    if t != f.data_type() {
                        *t = DataType::Utf8;
                    }
                })
                .or_insert_with(|| f.data_type().clone());
        }
    }
    let mut fields = fixed;
    fields.extend(props.into_iter().map(|(n, t)| Field::new(n, t, true)));
    Arc::new(Schema::new(fields))
}

#[async_trait]
impl TableProvider for CanopyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters reach the Parquet scan as a predicate (pruning and late materialization);
    /// DataFusion still applies them above the scan, so the tail needs no special case.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !self.files.is_empty() {
            let partitions = state.config().target_partitions().max(1);
            let mut groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); partitions.min(self.files.len())];
            // Spread files by size so partitions do similar work.
            let mut order: Vec<&(String, u64)> = self.files.iter().collect();
            order.sort_by_key(|f| std::cmp::Reverse(f.1));
            let mut load = vec![0u64; groups.len()];
            for (path, size) in order {
                let i = (0..groups.len()).min_by_key(|i| load[*i]).unwrap_or(0);
                load[i] += size;
                groups[i].push(PartitionedFile::new(path.clone(), *size));
            }
            let mut source =
                ParquetSource::new(self.schema.clone()).with_encryption_factory(self.keys.clone());
            if let Some(predicate) = conjunction(filters.iter().cloned()) {
                let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                    .with_file_groups(groups.into_iter().map(FileGroup::from).collect())
                    .with_projection_indices(projection.cloned())?
                    .build();
            inputs.push(datafusion::datasource::source::DataSourceExec::from_data_source(config));
        }
        if !self.tail.is_empty() {
            // Spread the tail's chunks over the partitions, too.
            let n = state.config().target_partitions().clamp(1, self.tail.len());
            let mut partitions = vec![Vec::new(); n];
            for (i, b) in self.tail.iter().enumerate() {
                partitions[i % n].push(b.clone());
            }
            inputs.push(MemorySourceConfig::try_new_exec(
                &partitions,
                self.schema.clone(),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

impl From<QueryError> for datafusion::error::DataFusionError {
    fn from(e: QueryError) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}
