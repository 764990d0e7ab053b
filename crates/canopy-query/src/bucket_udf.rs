//! `canopy_bucket(time)`: the index of the time bucket an event falls in, given the buckets'
//! start instants. Reports compute the starts once per query in the project's time zone
//! (local midnights, Mondays, first days of months — DST-correct by construction), so the
//! per-row work is a binary search rather than a time-zone conversion.

use arrow::array::{Array, Int32Array, TimestampMillisecondArray};
use arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::Expr;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Bucket `i` covers `[starts[i], starts[i + 1])`; the last one ends at `end`.
#[derive(Debug)]
pub(crate) struct BucketUdf {
    starts: Arc<[i64]>,
    end: i64,
    signature: Signature,
}

impl BucketUdf {
    /// `canopy_bucket(time)` over the given bucket starts (ascending) and the range's end.
    pub(crate) fn call(starts: Arc<[i64]>, end: i64, time: Expr) -> Expr {
        ScalarUDF::from(Self {
            starts,
            end,
            signature: Signature::any(1, Volatility::Immutable),
        })
        .call(vec![time])
    }

    fn index(&self, t: i64) -> Option<i32> {
        bucket_index(&self.starts, self.end, t)
    }
}

/// The bucket `t` falls in: bucket `i` covers `[starts[i], starts[i + 1])`, the last one ends
/// at `end`; `None` outside them all.
pub(crate) fn bucket_index(starts: &[i64], end: i64, t: i64) -> Option<i32> {
    if t >= end {
        return None;
    }
    let i = starts.partition_point(|s| *s <= t).checked_sub(1)?;
    i32::try_from(i).ok()
}

impl PartialEq for BucketUdf {
    fn eq(&self, other: &Self) -> bool {
        self.starts == other.starts && self.end == other.end
    }
}
impl Eq for BucketUdf {}
impl Hash for BucketUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.starts.hash(state);
        self.end.hash(state);
    }
}

impl ScalarUDFImpl for BucketUdf {
    fn name(&self) -> &str {
        "canopy_bucket"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arg = args
            .args
            .first()
            .ok_or_else(|| DataFusionError::Plan("canopy_bucket expects a time".into()))?
            .to_array(args.number_rows)?;
        let times = arg
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| DataFusionError::Plan("canopy_bucket expects a ms timestamp".into()))?;
        let out: Int32Array = times
            .iter()
            .map(|t| t.and_then(|t| self.index(t)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// [`bucket_index`] by table: the range is cut into 15-minute slots (every local midnight,
/// hour, week and month start of every time zone in use lies on one), each slot mapped to
/// its bucket once per query, so a row costs one division instead of a binary search. A slot
/// a bucket starts inside of (a historical offset) falls back to the search.
#[derive(Debug)]
pub(crate) struct BucketLookup<'a> {
    starts: &'a [i64],
    end: i64,
    slots: Vec<u32>,
}

const SLOT_MS: i64 = 15 * 60 * 1000;
/// A slot that is not within one bucket.
const SEARCH: u32 = u32::MAX;
/// At most this many slots (~114 years); longer ranges search every row.
const MAX_SLOTS: i64 = 1 << 22;

impl<'a> BucketLookup<'a> {
    pub(crate) fn new(starts: &'a [i64], end: i64) -> Self {
        let first = starts.first().copied().unwrap_or(end);
        let count = (end - first).max(0) / SLOT_MS + 1;
        let slots = if count > MAX_SLOTS {
            Vec::new()
        } else {
            (0..count)
                .map(|s| {
                    let from = first + s * SLOT_MS;
                    let a = bucket_index(starts, end, from);
                    let b = bucket_index(starts, end, from + SLOT_MS - 1);
                    match (a, b) {
                        (Some(a), Some(b)) if a == b => a as u32,
                        _ => SEARCH,
                    }
                })
                .collect()
        };
        Self { starts, end, slots }
    }

    pub(crate) fn index(&self, t: i64) -> Option<usize> {
        let first = *self.starts.first()?;
        if t >= first
            && let Some(slot) = self.slots.get(((t - first) / SLOT_MS) as usize)
            && *slot != SEARCH
        {
            return Some(*slot as usize);
        }
        bucket_index(self.starts, self.end, t).map(|i| i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_table_finds_the_bucket_the_search_finds(
            first in -10_000_000_000i64..10_000_000_000,
            widths in prop::collection::vec(
                prop_oneof![Just(SLOT_MS * 4), Just(86_400_000i64), 1i64..200_000_000],
                1..40,
            ),
            probes in prop::collection::vec(-1_000_000i64..4_000_000_000, 1..60),
        ) {
            let mut starts = vec![first];
            for w in &widths {
                starts.push(starts.last().copied().unwrap_or(first) + w);
            }
            let end = starts.pop().unwrap_or(first) ;
            let lookup = BucketLookup::new(&starts, end);
            for p in probes {
                let t = first + p;
                prop_assert_eq!(lookup.index(t), bucket_index(&starts, end, t).map(|i| i as usize));
            }
        }
    }

    #[test]
    fn times_fall_in_the_bucket_that_started_last() {
        let b = BucketUdf {
            starts: Arc::from(vec![0, 10, 25]),
            end: 40,
            signature: Signature::any(1, Volatility::Immutable),
        };
        assert_eq!(b.index(-1), None);
        assert_eq!(b.index(0), Some(0));
        assert_eq!(b.index(9), Some(0));
        assert_eq!(b.index(10), Some(1));
        assert_eq!(b.index(39), Some(2));
        assert_eq!(b.index(40), None);
    }
}
