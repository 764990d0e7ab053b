//! One project's identity clusters in memory, and the merge rules. Pure: every decision is a
//! function of the current state and the op; what changed is returned as [`Change`]s for the
//! persistence layer. A cluster's person key is the id key of its canonical id (the user id in
//! simplified mode, the identified id in original mode when there is one), so identified
//! events need no alias and export shows the id users expect.

use crate::hints::{Op, looks_anonymous};
use canopy_types::PersonKey;
use std::collections::{HashMap, HashSet};

/// Original ID merge's cluster limit (mixpanel-api.md §11.2).
pub const MAX_CLUSTER_IDS: usize = 500;

/// A change to persist, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A raw id seen for the first time.
    Register { id: u64, raw: String },
    /// `id` now belongs to the cluster whose person key is `person`.
    Point { id: u64, person: u64 },
    /// `id` is a user (identified) id.
    Identified { id: u64 },
    /// `id` was erased: its row (and sealed raw id) is deleted.
    Forget { id: u64 },
}

/// Why a merge was refused. The event is still recorded, under its own distinct_id.
pub type Refusal = &'static str;

#[derive(Debug, Default, Clone)]
pub struct Graph {
    /// Every id key registered.
    known: HashSet<u64>,
    /// Ids whose cluster's person key is not their own.
    person_of: HashMap<u64, u64>,
    /// Person key → the other ids of its cluster (only for clusters of more than one id).
    members: HashMap<u64, Vec<u64>>,
    identified: HashSet<u64>,
    /// Bumped on every change that moves an id between clusters.
    version: u64,
}

impl Graph {
    /// Rebuilds the state from persisted rows `(id, person, identified)`.
    pub fn load(rows: impl IntoIterator<Item = (u64, u64, bool)>) -> Self {
        let mut g = Graph::default();
        for (id, person, identified) in rows {
            g.known.insert(id);
            if identified {
                g.identified.insert(id);
            }
            if person != id {
                g.person_of.insert(id, person);
                g.members.entry(person).or_default().push(id);
            }
        }
        g
    }

    pub fn person(&self, id: u64) -> u64 {
        self.person_of.get(&id).copied().unwrap_or(id)
    }

    pub fn has_ids(&self) -> bool {
        !self.known.is_empty()
    }

    pub fn is_known(&self, id: u64) -> bool {
        self.known.contains(&id)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// All ids of the cluster of `person` (itself first).
    pub fn cluster(&self, person: u64) -> Vec<u64> {
        let mut ids = vec![person];
        ids.extend(self.members.get(&person).into_iter().flatten().copied());
        ids
    }

    fn size(&self, person: u64) -> usize {
        1 + self.members.get(&person).map_or(0, Vec::len)
    }

    fn has_identified(&self, person: u64) -> bool {
        self.cluster(person)
            .iter()
            .any(|i| self.identified.contains(i))
    }

    /// Ids whose person differs from their own key — what queries apply to stored keys.
    pub fn aliases(&self) -> HashMap<u64, u64> {
        self.person_of.clone()
    }

    pub fn aliases_len(&self) -> usize {
        self.person_of.len()
    }

    pub fn register(&mut self, id: PersonKey, raw: &str, changes: &mut Vec<Change>) {
        if id != PersonKey::NONE && self.known.insert(id.0) {
            changes.push(Change::Register {
                id: id.0,
                raw: raw.to_string(),
            });
        }
    }

    pub fn mark_identified(&mut self, id: PersonKey, changes: &mut Vec<Change>) {
        if id != PersonKey::NONE && self.identified.insert(id.0) {
            changes.push(Change::Identified { id: id.0 });
        }
    }

    /// Moves every id of cluster `from` into cluster `into`.
    fn absorb(&mut self, from: u64, into: u64, changes: &mut Vec<Change>) {
        if from == into {
            return;
        }
        let moved = self.cluster(from);
        self.members.remove(&from);
        for id in &moved {
            if *id == into {
                continue;
            }
            self.person_of.insert(*id, into);
            changes.push(Change::Point {
                id: *id,
                person: into,
            });
        }
        self.members
            .entry(into)
            .or_default()
            .extend(moved.into_iter().filter(|i| *i != into));
        self.version += 1;
    }

    /// Erases the whole cluster of `person`: its ids are unknown from now on (a later event
    /// from one of them starts a new person). Returns the erased id keys.
    pub fn forget_cluster(&mut self, person: u64, changes: &mut Vec<Change>) -> Vec<u64> {
        let person = self.person(person);
        let ids: Vec<u64> = self
            .cluster(person)
            .into_iter()
            .filter(|id| self.known.contains(id))
            .collect();
        self.members.remove(&person);
        for id in &ids {
            self.known.remove(id);
            self.person_of.remove(id);
            self.identified.remove(id);
            changes.push(Change::Forget { id: *id });
        }
        self.version += 1;
        ids
    }

    /// Applies one op; `key` turns raw ids into id keys (and registers them).
    pub fn apply(
        &mut self,
        op: &Op,
        key: &mut dyn FnMut(&mut Self, &str, &mut Vec<Change>) -> u64,
        changes: &mut Vec<Change>,
    ) -> Result<(), Refusal> {
        match op {
            Op::Unsupported(why) => Err(why),
            Op::Link { user, anon } => {
                let u = key(self, user, changes);
                self.mark_identified(PersonKey(u), changes);
                let pu = self.person(u);
                let mut refused = None;
                for a in anon {
                    let ka = key(self, a, changes);
                    let pa = self.person(ka);
                    if pa == pu {
                        continue;
                    }
                    // One user per cluster: an id already tied to another user stays there.
                    if self.has_identified(pa) {
                        refused = Some("already_linked_to_another_user");
                        continue;
                    }
                    self.absorb(pa, pu, changes);
                }
                refused.map_or(Ok(()), Err)
            }
            Op::Identify { identified, anon } => {
                let i = key(self, identified, changes);
                let a = key(self, anon, changes);
                let (pi, pa) = (self.person(i), self.person(a));
                if pi == pa {
                    self.mark_identified(PersonKey(i), changes);
                    return Ok(());
                }
                if !looks_anonymous(anon) {
                    return Err("anon_id_not_anonymous");
                }
                if self.has_identified(pa) {
                    return Err("anon_id_already_identified");
                }
                self.check_limit(pi, pa)?;
                self.mark_identified(PersonKey(i), changes);
                self.absorb(pa, pi, changes);
                Ok(())
            }
            Op::Alias { alias, original } => {
                let x = key(self, alias, changes);
                let o = key(self, original, changes);
                let (px, po) = (self.person(x), self.person(o));
                if px == po {
                    return Ok(());
                }
                // An alias points to one cluster only.
                if self.size(px) > 1 {
                    return Err("alias_already_merged");
                }
                self.check_limit(px, po)?;
                let (from, into) = self.root_order(po, px);
                self.absorb(from, into, changes);
                Ok(())
            }
            Op::Merge { a, b } => {
                let ka = key(self, a, changes);
                let kb = key(self, b, changes);
                let (pa, pb) = (self.person(ka), self.person(kb));
                if pa == pb {
                    return Ok(());
                }
                self.check_limit(pa, pb)?;
                let (from, into) = self.root_order(pa, pb);
                self.absorb(from, into, changes);
                Ok(())
            }
        }
    }

    fn check_limit(&self, p1: u64, p2: u64) -> Result<(), Refusal> {
        if self.size(p1) + self.size(p2) > MAX_CLUSTER_IDS {
            Err("cluster_limit")
        } else {
            Ok(())
        }
    }

    /// (absorbed, surviving) for merging clusters `preferred` and `other`: a cluster with an
    /// identified id survives, so the canonical id stays the user's; otherwise `preferred`.
    fn root_order(&self, preferred: u64, other: u64) -> (u64, u64) {
        if !self.has_identified(preferred) && self.has_identified(other) {
            (preferred, other)
        } else {
            (other, preferred)
        }
    }
}
