//! Flows (issue #5; semantics in `docs/query-semantics.md`): the paths people take after (or
//! before) an anchor event, as Sankey links between (step, event) nodes. Pure: the scan gives
//! each person's event names in time order.
//!
//! A person contributes the path from their first anchor event in the range (or every anchor
//! event with `all_anchors`), `steps` events long; consecutive repeats of one event collapse
//! into one step when `collapse_repeats` is set (Mixpanel's default); a path that ends early
//! links to `$end`. Counts are of paths (people, when only the first anchor is used).

use std::collections::HashMap;

/// The node a path reaches when the person has no more events.
pub const END: &str = "$end";

pub use canopy_report_wire::Direction;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSpec {
    pub anchor: String,
    pub steps: usize,
    pub direction: Direction,
    pub all_anchors: bool,
    pub collapse_repeats: bool,
}

/// Links `(step, from, to) → paths`, step 1 being from the anchor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flows {
    pub links: HashMap<(usize, String, String), u64>,
    pub paths: u64,
}

impl FlowSpec {
    /// Adds one person's paths; `names` in time order.
    pub fn add_person(&self, names: &[&str], flows: &mut Flows) {
        let anchors: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == self.anchor)
            .map(|(i, _)| i)
            .collect();
        let chosen: &[usize] = if self.all_anchors {
            &anchors
        } else {
            anchors.get(..1).unwrap_or(&[])
        };
        for &a in chosen {
            flows.paths += 1;
            let mut path: Vec<&str> = Vec::with_capacity(self.steps);
            let mut walk = |i: usize| -> bool {
                let n = names[i];
                if self.collapse_repeats && path.last().copied().unwrap_or(&self.anchor) == n {
                    return true;
                }
                path.push(n);
                path.len() < self.steps
            };
            match self.direction {
                Direction::After => {
                    for i in a + 1..names.len() {
                        if !walk(i) {
                            break;
                        }
                    }
                }
                Direction::Before => {
                    for i in (0..a).rev() {
                        if !walk(i) {
                            break;
                        }
                    }
                }
            }
            let mut from = self.anchor.as_str();
            for step in 1..=self.steps {
                let to = path.get(step - 1).copied().unwrap_or(END);
                *flows
                    .links
                    .entry((step, from.to_string(), to.to_string()))
                    .or_default() += 1;
                if to == END {
                    break;
                }
                from = to;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(direction: Direction) -> FlowSpec {
        FlowSpec {
            anchor: "Open".into(),
            steps: 3,
            direction,
            all_anchors: false,
            collapse_repeats: true,
        }
    }

    fn link(f: &Flows, step: usize, a: &str, b: &str) -> u64 {
        f.links
            .get(&(step, a.to_string(), b.to_string()))
            .copied()
            .unwrap_or(0)
    }

    #[test]
    fn paths_after_the_first_anchor_with_repeats_collapsed_and_early_ends() {
        let s = spec(Direction::After);
        let mut f = Flows::default();
        s.add_person(&["Login", "Open", "Open", "Play", "Play", "Quit"], &mut f);
        s.add_person(&["Open", "Play"], &mut f);
        assert_eq!(f.paths, 2);
        assert_eq!(link(&f, 1, "Open", "Play"), 2);
        assert_eq!(link(&f, 2, "Play", "Quit"), 1);
        assert_eq!(link(&f, 2, "Play", END), 1);
        assert_eq!(link(&f, 3, "Quit", END), 1);
    }

    #[test]
    fn paths_before_and_every_anchor() {
        let mut s = spec(Direction::Before);
        let mut f = Flows::default();
        s.add_person(&["Login", "Home", "Open"], &mut f);
        assert_eq!(link(&f, 1, "Open", "Home"), 1);
        assert_eq!(link(&f, 2, "Home", "Login"), 1);
        s.direction = Direction::After;
        s.all_anchors = true;
        let mut f = Flows::default();
        s.add_person(&["Open", "Play", "Open", "Quit"], &mut f);
        assert_eq!(f.paths, 2);
        assert_eq!(link(&f, 1, "Open", "Quit"), 1);
    }
}
