//! Profiles, materialized at query time by folding the stored `/engage` and `/groups`
//! operations in arrival order (`seq`), with merged identities applied: when several stored
//! keys now belong to one person, the profile stored under the person's own key wins (as in
//! Mixpanel, properties set on an anonymous id are not carried over once it merges), else the
//! most recently updated one. Results are cached per snapshot, so repeated queries over an
//! unchanged project reuse them.

use crate::Result;
use crate::identity_udf::DisplayId;
use crate::table::QueryEngine;
use arrow::array::RecordBatch;
use canopy_identity::ProfileState;
use canopy_store::batch_to_profiles;
use canopy_types::{Event, PersonKey, ProfileTarget, ProjectId};
use datafusion::prelude::{SessionContext, col, lit};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

/// One materialized profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The person's current key (users) or the group's key (groups).
    pub person: PersonKey,
    pub state: ProfileState,
    /// Set for group profiles.
    pub group: Option<(String, String)>,
    last_seq: u64,
}

#[derive(Debug, Default)]
pub struct Profiles {
    pub users: Vec<Profile>,
    pub groups: Vec<Profile>,
}

/// Folds `(seq, update)` rows into profiles keyed by (group, stored key).
fn fold(
    mut rows: Vec<(u64, canopy_types::ProfileUpdate)>,
) -> HashMap<(Option<(String, String)>, u64), Profile> {
    rows.sort_by_key(|(seq, _)| *seq);
    let mut out: HashMap<(Option<(String, String)>, u64), Profile> = HashMap::new();
    for (seq, u) in rows {
        let group = match u.target {
            ProfileTarget::User { .. } => None,
            ProfileTarget::Group {
                group_key,
                group_id,
            } => Some((group_key, group_id)),
        };
        let p = out
            .entry((group.clone(), u.person.0))
            .or_insert_with(|| Profile {
                person: u.person,
                state: ProfileState::default(),
                group,
                last_seq: 0,
            });
        p.state
            .apply(&u.operation, &u.value, u.time_ms, &u.modifiers);
        p.last_seq = seq;
    }
    out
}

/// Applies merges: one profile per current person — the one stored under the person's own
/// key if there is one, else the most recently updated.
fn resolve(
    folded: HashMap<(Option<(String, String)>, u64), Profile>,
    aliases: &HashMap<u64, u64>,
) -> Profiles {
    let mut users: HashMap<u64, (bool, Profile)> = HashMap::new();
    let mut groups = Vec::new();
    for ((group, stored), mut p) in folded {
        if !p.state.exists {
            continue;
        }
        if group.is_some() {
            groups.push(p);
            continue;
        }
        let current = *aliases.get(&stored).unwrap_or(&stored);
        let own = stored == current;
        p.person = PersonKey(current);
        let better = match users.get(&current) {
            None => true,
            Some((e_own, e)) => (own && !e_own) || (own == *e_own && p.last_seq > e.last_seq),
        };
        if better {
            users.insert(current, (own, p));
        }
    }
    Profiles {
        users: users.into_values().map(|(_, p)| p).collect(),
        groups,
    }
}

async fn collect_updates(
    ctx: &SessionContext,
    project: ProjectId,
    persons: Option<&[u64]>,
) -> Result<Vec<(u64, canopy_types::ProfileUpdate)>> {
    let mut df = ctx.table("profile_updates_stored").await?;
    if let Some(ids) = persons {
        df = df.filter(col("person").in_list(ids.iter().map(|p| lit(*p)).collect(), false))?;
    }
    let mut stream = df.execute_stream().await?;
    let mut rows = Vec::new();
    while let Some(batch) = stream.next().await {
        rows.extend(batch_to_profiles(&batch?, project)?);
    }
    Ok(rows)
}

impl QueryEngine {
    /// Every current user and group profile of a project.
    pub async fn profiles(&self, project: ProjectId) -> Result<Arc<Profiles>> {
        // The signature is taken before the data: a change in between only costs a recompute.
        let aliases = self.identity().aliases(project)?;
        let signature = self.profile_signature(project, &aliases);
        if let Some(p) = self.cached_profiles(project, signature) {
            return Ok(p);
        }
        let ctx = self.context(project, None)?;
        let rows = collect_updates(&ctx, project, None).await?;
        let profiles = Arc::new(resolve(fold(rows), &aliases));
        self.cache_profiles(project, signature, profiles.clone());
        Ok(profiles)
    }

    /// One person (the person's current key): the profile, if any, and the `limit` most
    /// recent events, newest first — from one snapshot, over the keys of the person's cluster.
    pub async fn person_view(
        &self,
        project: ProjectId,
        person: PersonKey,
        limit: usize,
    ) -> Result<(Option<ProfileState>, Vec<Event>)> {
        let ids: Vec<u64> = self.identity().cluster_keys(project, person)?;
        let ctx = self.context(project, None)?;
        let rows = collect_updates(&ctx, project, Some(&ids)).await?;
        let aliases: HashMap<u64, u64> = ids.iter().map(|i| (*i, person.0)).collect();
        let profile = resolve(fold(rows), &aliases)
            .users
            .into_iter()
            .find(|p| p.person == person)
            .map(|p| p.state);
        let events =
            crate::activity::cluster_events(&ctx, project, &ids, None, false, limit).await?;
        Ok((profile, events))
    }
}

/// User profiles as a table: `person`, `distinct_id`, `last_seen` and one typed column per
/// frequent property (`p.<type>.<name>`, as events), the rest in `props_other`.
pub(crate) fn users_batch(profiles: &Profiles) -> Result<RecordBatch> {
    let rows: Vec<Event> = profiles
        .users
        .iter()
        .map(|p| pseudo_event(p, String::new(), String::new()))
        .collect();
    Ok(canopy_store::events_to_batch(
        &rows.iter().collect::<Vec<_>>(),
    )?)
}

pub(crate) fn groups_batch(profiles: &Profiles) -> Result<RecordBatch> {
    let rows: Vec<Event> = profiles
        .groups
        .iter()
        .map(|p| {
            let (k, id) = p.group.clone().unwrap_or_default();
            pseudo_event(p, k, id)
        })
        .collect();
    Ok(canopy_store::events_to_batch(
        &rows.iter().collect::<Vec<_>>(),
    )?)
}

/// A profile in the events layout, so profiles get the same typed columns as events.
fn pseudo_event(p: &Profile, name: String, insert_id: String) -> Event {
    Event {
        project: ProjectId(0),
        name,
        time_ms: p.state.last_seen_ms.unwrap_or(0),
        distinct_id: String::new(),
        person: p.person,
        insert_id,
        received_ms: 0,
        properties: p.state.properties.clone(),
        ip: None,
    }
}

impl QueryEngine {
    /// [`QueryEngine::context`] plus `profiles` (user profiles: `person`, `distinct_id`,
    /// `last_seen`, typed property columns, `props_other`) and `group_profiles` (`group_key`,
    /// `group_id`, `last_seen`, properties), for filters and breakdowns by profile properties.
    pub async fn context_with_profiles(
        &self,
        project: ProjectId,
        time_range: Option<(i64, i64)>,
    ) -> Result<SessionContext> {
        let profiles = self.profiles(project).await?;
        let ctx = self.context(project, time_range)?;
        let users = users_batch(&profiles)?;
        let mut columns = vec![
            col("person"),
            DisplayId::udf(self.identity().clone(), project)
                .call(vec![col("person")])
                .alias("distinct_id"),
            col("time").alias("last_seen"),
        ];
        columns.extend(property_columns(&users));
        ctx.register_table(
            "profiles",
            ctx.read_batch(users)?.select(columns)?.into_view(),
        )?;
        let groups = groups_batch(&profiles)?;
        let mut columns = vec![
            col("event").alias("group_key"),
            col("insert_id").alias("group_id"),
            col("time").alias("last_seen"),
        ];
        columns.extend(property_columns(&groups));
        ctx.register_table(
            "group_profiles",
            ctx.read_batch(groups)?.select(columns)?.into_view(),
        )?;
        Ok(ctx)
    }
}

fn property_columns(batch: &RecordBatch) -> Vec<datafusion::prelude::Expr> {
    batch
        .schema()
        .fields()
        .iter()
        .filter(|f| {
            f.name() == "props_other" || canopy_store::property_of_column(f.name()).is_some()
        })
        .map(|f| datafusion::prelude::ident(f.name()))
        .collect()
}
