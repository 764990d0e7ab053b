//! The flows report (issue #5): the paths people take after or before an anchor event, as
//! Sankey links. Rules in `docs/query-semantics.md`; the per-person operator is `flows.rs`.
//! Every event name takes part, so the scan reads all of the range's events (names only).

use crate::flows::{Direction, FlowSpec, Flows};
use crate::{AnalyticsError, Result};
use canopy_query::{QueryEngine, SequenceRequest};
use canopy_types::ProjectId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
pub struct FlowsRequest {
    #[serde(skip)]
    pub project: ProjectId,
    pub from_ms: i64,
    pub to_ms: i64,
    pub anchor: String,
    /// The events a path may contain (the anchor is added). Flows need a list: the scan is
    /// over these names.
    pub events: Vec<String>,
    /// Steps after (or before) the anchor, 1 to 10.
    pub steps: usize,
    /// `after` (default) or `before`.
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub all_anchors: bool,
    /// Collapse consecutive repeats of one event (default true, as Mixpanel).
    #[serde(default)]
    pub keep_repeats: bool,
    /// Only a saved cohort's members (or everyone else).
    #[serde(default)]
    pub cohort: Option<crate::cohorts::CohortFilter>,
    /// The members of `cohort`, resolved by the caller.
    #[serde(skip)]
    pub cohort_members: Option<canopy_query::PersonSet>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Link {
    pub step: usize,
    pub from: String,
    pub to: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowsReport {
    /// Paths counted (people, unless every anchor occurrence is used).
    pub paths: u64,
    /// Links by step, then count (largest first), then names.
    pub links: Vec<Link>,
}

pub async fn flows(engine: &QueryEngine, req: &FlowsRequest) -> Result<FlowsReport> {
    if !(1..=10).contains(&req.steps) {
        return Err(AnalyticsError::Invalid(
            "steps must be between 1 and 10".into(),
        ));
    }
    if req.to_ms <= req.from_ms {
        return Err(AnalyticsError::Invalid(
            "to_ms must be after from_ms".into(),
        ));
    }
    let direction = match req.direction.as_deref().unwrap_or("after") {
        "after" => Direction::After,
        "before" => Direction::Before,
        d => {
            return Err(AnalyticsError::Invalid(format!(
                "direction must be \"after\" or \"before\" (got {d:?})"
            )));
        }
    };
    let mut names = req.events.clone();
    names.push(req.anchor.clone());
    names.sort();
    names.dedup();
    let rows = engine
        .sequences(&SequenceRequest {
            project: req.project,
            from_ms: req.from_ms,
            to_ms: req.to_ms,
            events: names.clone(),
            with_properties: false,
            persons: crate::cohorts::person_filter(
                req.cohort.as_ref(),
                req.cohort_members.as_ref(),
            )?,
        })
        .await?;
    let spec = FlowSpec {
        anchor: req.anchor.clone(),
        steps: req.steps,
        direction,
        all_anchors: req.all_anchors,
        collapse_repeats: !req.keep_repeats,
    };
    let shards = rows.fold_persons(
        || (Flows::default(), Vec::<&str>::new()),
        |(flows, path), person| {
            path.clear();
            path.extend(person.iter().map(|r| names[usize::from(r.event)].as_str()));
            spec.add_person(path, flows);
        },
    )?;
    let mut flows = Flows::default();
    for (shard, _) in shards {
        flows.paths += shard.paths;
        for (k, v) in shard.links {
            *flows.links.entry(k).or_insert(0) += v;
        }
    }
    let mut links: Vec<Link> = flows
        .links
        .into_iter()
        .map(|((step, from, to), count)| Link {
            step,
            from,
            to,
            count,
        })
        .collect();
    links.sort_by(|a, b| {
        (a.step, std::cmp::Reverse(a.count), &a.from, &a.to).cmp(&(
            b.step,
            std::cmp::Reverse(b.count),
            &b.from,
            &b.to,
        ))
    });
    Ok(FlowsReport {
        paths: flows.paths,
        links,
    })
}
