//! The flows report (issue #5): the paths people take after or before an anchor event, as
//! Sankey links. Rules in `docs/query-semantics.md`; the per-person operator is `flows.rs`.
//! Every event name takes part, so the scan reads all of the range's events (names only).

use crate::Result;
use crate::flows::{FlowSpec, Flows};
use canopy_query::{QueryEngine, SequenceRequest};
use canopy_report_wire::{Definition, FlowsQuery};
use canopy_types::ProjectId;
use serde::Serialize;

/// A flows report to run: the client's definition and what the server resolved for it.
#[derive(Debug, Clone)]
pub struct FlowsRequest {
    pub project: ProjectId,
    pub query: FlowsQuery,
    /// The members of the query's `cohort`.
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
    let q = &req.query;
    q.check()?;
    let direction = q.direction()?;
    let mut names = q.events.clone();
    names.push(q.anchor.clone());
    names.sort();
    names.dedup();
    let rows = engine
        .sequences(&SequenceRequest {
            project: req.project,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            events: names.clone(),
            with_properties: false,
            persons: crate::cohorts::person_filter(q.cohort.as_ref(), req.cohort_members.as_ref())?,
        })
        .await?;
    let spec = FlowSpec {
        anchor: q.anchor.clone(),
        steps: q.steps,
        direction,
        all_anchors: q.all_anchors,
        collapse_repeats: !q.keep_repeats,
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
