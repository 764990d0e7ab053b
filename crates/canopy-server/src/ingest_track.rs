//! `/track`, and the item loop every ingestion endpoint shares.

use crate::projects::ResolvedProject;
use crate::request::{self, RawRequest};
use crate::respond::{Outcome, ingest_response};
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use canopy_identity::ResolveOptions;
use canopy_ingest::{
    Endpoint, EventContext, Params, Reason, Rejection, decode_payload, normalize_event,
};
use canopy_types::{Event, ProfileUpdate, ProjectId, Record};
use serde_json::Value;
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;
/// Mixpanel's `/track` acceptance window.
const TRACK_MAX_AGE_MS: i64 = 5 * DAY_MS;

/// Normalizes one item into its token (if it carries one) and a record.
pub(crate) type Normalizer<'a> =
    dyn Fn(Value, i64) -> Result<Option<(Option<String>, Record)>, Rejection> + Send + Sync + 'a;

pub(crate) async fn track(State(state): State<AppState>, req: Request<Body>) -> Response {
    let raw = request::read(req, state.limits.max_body_bytes, &state.enrichment).await;
    if let Ok(body) = &raw.body
        && canopy_ingest::looks_like_posthog(&raw.query, body)
    {
        return crate::ingest_posthog::handle(&state, &raw, false).await;
    }
    let limits = state.limits.clone();
    let normalize = move |item: Value, now_ms: i64| {
        let ctx = EventContext {
            endpoint: Endpoint::Track,
            now_ms,
            track_max_age_ms: TRACK_MAX_AGE_MS,
            limits: &limits,
        };
        Ok(normalize_event(item, &ctx)?.map(|(t, e)| (t, Record::Event(e))))
    };
    match process(&state, &raw, "track", &normalize, None).await {
        Ok((params, outcome)) => ingest_response(&params, &outcome),
        Err(e) => e.into_response(),
    }
}

/// Decodes the request and stores every valid item, grouped by project. `fixed` is the
/// project an authenticated endpoint already knows; otherwise each item's token decides.
/// Returns `Err` only for server-side failures (overload, storage), never for client input.
pub(crate) async fn process(
    state: &AppState,
    raw: &RawRequest,
    endpoint: &'static str,
    normalize: &Normalizer<'_>,
    fixed: Option<&ResolvedProject>,
) -> Result<(Params, Outcome), ApiError> {
    let mut outcome = Outcome::default();
    let body = match &raw.body {
        Ok(b) => b.clone(),
        Err(r) => {
            count_rejected(endpoint, r.reason, 1);
            outcome.fatal = Some(r.clone());
            // The query string still says how to answer (verbose, callback).
            let params = Params::from_query(&raw.query);
            return Ok((params, outcome));
        }
    };
    let decoded = decode_payload(raw.parts(&body), &state.limits);
    let items = match decoded.items {
        Ok(items) => items,
        Err(r) => {
            count_rejected(endpoint, r.reason, 1);
            outcome.fatal = Some(r);
            return Ok((decoded.params, outcome));
        }
    };
    let now = state.clock.now_ms();
    let mut last: Option<(String, ResolvedProject)> = None;
    let mut groups: BTreeMap<ProjectId, (Option<ResolvedProject>, Vec<Record>)> = BTreeMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let (token, record) = match normalize(item, now) {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(r) => {
                count_rejected(endpoint, r.reason, 1);
                outcome.rejected.push((i, r));
                continue;
            }
        };
        let resolved = match (fixed, token) {
            (Some(p), _) => p.clone(),
            (None, None) => {
                let r = Rejection::new(Reason::MissingToken, "token", "project token missing");
                count_rejected(endpoint, r.reason, 1);
                outcome.rejected.push((i, r));
                continue;
            }
            (None, Some(t)) => {
                // Batches almost always carry one token: look it up once.
                if last.as_ref().is_none_or(|(lt, _)| *lt != t) {
                    match state.projects.by_token(&t)? {
                        Some(p) => last = Some((t, p)),
                        None => {
                            let r = Rejection::new(
                                Reason::UnknownToken,
                                "token",
                                "unknown project token",
                            );
                            count_rejected(endpoint, r.reason, 1);
                            outcome.rejected.push((i, r));
                            continue;
                        }
                    }
                }
                match &last {
                    Some((_, p)) => p.clone(),
                    None => continue,
                }
            }
        };
        let group = groups.entry(resolved.project.id).or_default();
        group.1.push(record);
        group.0.get_or_insert(resolved);
    }
    // Mixpanel: `ip=1` says the request's address is the user's; `/import` never does.
    let facts = raw.facts(decoded.params.ip && endpoint != "import");
    for (project, records) in groups.into_values() {
        let Some(project) = project else { continue };
        // Mixpanel honours `$merge` only from authenticated `/import`.
        let allow_merge = fixed.is_some() && endpoint == "import";
        outcome.accepted +=
            store_batch(state, &project, allow_merge, &facts, records, endpoint).await?;
    }
    Ok((decoded.params, outcome))
}

/// The privacy policy, identity, then the store (which answers once the batch is durable).
/// Returns how many records were accepted — including those the policy refused or duplicates
/// dropped: they were received and must not be retried.
pub(crate) async fn store_batch(
    state: &AppState,
    resolved: &ResolvedProject,
    allow_merge: bool,
    req: &crate::request::RequestFacts,
    records: Vec<Record>,
    endpoint: &'static str,
) -> Result<usize, ApiError> {
    let n = records.len();
    if n == 0 {
        return Ok(0);
    }
    let project = resolved.project.id;
    let opts = ResolveOptions {
        mode: resolved.id_merge,
        allow_merge,
        replay: false,
    };
    let mut records = records;
    attribute_request(req, &mut records);
    let records = crate::privacy::apply_policy(state, resolved, req, records);
    if records.is_empty() {
        return Ok(n);
    }
    let mut records = records;
    for r in records.iter_mut() {
        match r {
            Record::Event(e) => e.project = project,
            Record::Profile(p) => p.project = project,
        }
    }
    let records = resolve_identities(state, project, opts, records).await?;
    let stored = state.store.append(project, records).await?;
    metrics::counter!("canopy_ingest_accepted_total", "endpoint" => endpoint)
        .increment(stored.stored as u64);
    metrics::counter!("canopy_ingest_duplicates_total", "endpoint" => endpoint)
        .increment(stored.duplicates as u64);
    Ok(n)
}

/// Runs identity over a batch, keeping the records' order.
pub(crate) async fn resolve_identities(
    state: &AppState,
    project: ProjectId,
    opts: ResolveOptions,
    records: Vec<Record>,
) -> Result<Vec<Record>, ApiError> {
    let identity = &state.identity;
    let now = state.clock.now_ms();
    // Inline on the async worker: the common case is in-memory lookups (microseconds); a
    // thread hand-off per request cost more than the occasional SQLite commit of new ids.
    let (records, stats) = {
        let mut records = records;
        let mut events: Vec<Event> = Vec::new();
        let mut updates: Vec<ProfileUpdate> = Vec::new();
        let mut order = Vec::with_capacity(records.len());
        for r in records.drain(..) {
            match r {
                Record::Event(e) => {
                    order.push(true);
                    events.push(e);
                }
                Record::Profile(u) => {
                    order.push(false);
                    updates.push(u);
                }
            }
        }
        // Events first: a batch that identifies a user and then updates the user's profile
        // finds the merged person.
        let mut stats = identity.resolve_events(project, opts, &mut events, now)?;
        if !updates.is_empty() {
            let p = identity.resolve_profiles(project, &mut updates, now)?;
            stats.lookups += p.lookups;
            stats.registered += p.registered;
        }
        let (mut ev, mut up) = (events.into_iter(), updates.into_iter());
        let out: Vec<Record> = order
            .into_iter()
            .filter_map(|is_event| {
                if is_event {
                    ev.next().map(Record::Event)
                } else {
                    up.next().map(Record::Profile)
                }
            })
            .collect();
        (out, stats)
    };
    metrics::counter!("canopy_identity_lookups_total").increment(stats.lookups as u64);
    metrics::counter!("canopy_identity_registered_total").increment(stats.registered as u64);
    metrics::counter!("canopy_identity_merges_total").increment(stats.merges as u64);
    Ok(records)
}

pub(crate) fn count_rejected(endpoint: &'static str, reason: Reason, n: u64) {
    metrics::counter!("canopy_ingest_rejected_total", "endpoint" => endpoint, "reason" => reason.label()).increment(n);
}

/// Gives events the request's address (unless they name their own or opt out with PostHog's
/// `$geoip_disable`) and the browser / OS its user agent names, for the policy to judge.
fn attribute_request(req: &crate::request::RequestFacts, records: &mut [Record]) {
    let ua = req
        .user_agent
        .as_deref()
        .map(crate::enrich::user_agent_properties)
        .filter(|m| !m.is_empty());
    for r in records {
        let Record::Event(e) = r else { continue };
        if e.properties.get("$geoip_disable") == Some(&Value::Bool(true)) {
            e.ip = None;
        } else if e.ip.is_none() {
            e.ip = req.client_ip;
        }
        if let Some(ua) = &ua {
            crate::enrich::add_user_agent(&mut e.properties, ua);
        }
    }
}
