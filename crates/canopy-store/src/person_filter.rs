//! Which persons a segment holds, in about 18 bits each: a binary fuse filter over the
//! segment's distinct person keys. It is built from the rows as they are written (or, for a
//! segment found on disk at start-up, from its person column read back once), and segments
//! never change, so it stays exact about absence: when it says a key is not there, it is not.
//! An erasure's verification asks it first and reads the person column only of the segments
//! it cannot rule out, instead of every segment of the project.

use crate::{Result, StoreError};
use arrow::array::{Array, ArrayRef, UInt64Array};
use arrow::record_batch::RecordBatch;
use xorf::{BinaryFuse16, Filter};

/// Up to this many keys are kept as a sorted list (exact, and smaller than a filter).
const EXACT_MAX: usize = 512;

pub enum PersonFilter {
    Exact(Box<[u64]>),
    /// False positives ≈ 2⁻¹⁶ per probe, never false negatives.
    Fuse(BinaryFuse16),
}

impl std::fmt::Debug for PersonFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersonFilter::Exact(keys) => write!(f, "PersonFilter::Exact({} keys)", keys.len()),
            PersonFilter::Fuse(fuse) => {
                write!(f, "PersonFilter::Fuse({} slots)", fuse.fingerprints.len())
            }
        }
    }
}

impl PersonFilter {
    /// The filter of a segment's rows (their `person` column).
    pub(crate) fn of_batches(batches: &[RecordBatch]) -> Result<Self> {
        let columns = batches
            .iter()
            .map(|b| {
                b.column_by_name("person")
                    .cloned()
                    .ok_or_else(|| StoreError::Manifest("segment lacks the person column".into()))
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        Self::of_columns(&columns)
    }

    /// The filter of a segment's person column, as read back.
    pub(crate) fn of_columns(columns: &[ArrayRef]) -> Result<Self> {
        let mut keys = Vec::new();
        for c in columns {
            keys.extend(person_array(c)?.iter().flatten());
        }
        Ok(Self::of_keys(keys))
    }

    pub(crate) fn of_keys(mut keys: Vec<u64>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        if keys.len() <= EXACT_MAX {
            return PersonFilter::Exact(keys.into_boxed_slice());
        }
        // Construction only fails on duplicate keys (removed above); should it fail anyway,
        // the exact list is correct, only larger.
        match BinaryFuse16::try_from(&keys) {
            Ok(fuse) => PersonFilter::Fuse(fuse),
            Err(_) => PersonFilter::Exact(keys.into_boxed_slice()),
        }
    }

    /// False only when the segment certainly holds no row of `key`.
    pub fn may_contain(&self, key: u64) -> bool {
        match self {
            PersonFilter::Exact(keys) => keys.binary_search(&key).is_ok(),
            PersonFilter::Fuse(fuse) => fuse.contains(&key),
        }
    }

    /// Bytes held in memory.
    pub fn heap_bytes(&self) -> usize {
        match self {
            PersonFilter::Exact(keys) => keys.len() * 8,
            PersonFilter::Fuse(fuse) => fuse.fingerprints.len() * 2,
        }
    }
}

/// A segment's `person` column as what it is.
pub(crate) fn person_array(column: &ArrayRef) -> Result<&UInt64Array> {
    column
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| StoreError::Manifest("segment person column is not UInt64".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No false negatives, whatever the keys (duplicates included), small sets or large.
        #[test]
        fn every_key_it_was_built_from_may_be_there(
            keys in proptest::collection::vec(any::<u64>(), 0..3000),
            dup in 0usize..50,
        ) {
            let mut all = keys.clone();
            all.extend(keys.iter().take(dup).copied());
            let f = PersonFilter::of_keys(all);
            for k in &keys {
                prop_assert!(f.may_contain(*k));
            }
        }
    }

    #[test]
    fn absent_keys_are_almost_always_ruled_out() {
        let keys: Vec<u64> = (0..100_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let f = PersonFilter::of_keys(keys);
        assert!(matches!(f, PersonFilter::Fuse(_)));
        let false_positives = (1..=100_000u64)
            .map(|i| i.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1)
            .filter(|k| f.may_contain(*k))
            .count();
        // 2⁻¹⁶ expected: ~1.5 in 100k probes.
        assert!(false_positives < 20, "{false_positives} false positives");
        assert!(f.heap_bytes() < 100_000 * 3, "{} bytes", f.heap_bytes());
    }

    #[test]
    fn a_small_set_is_exact() {
        let f = PersonFilter::of_keys(vec![5, 3, 5, 9]);
        assert!(f.may_contain(3) && f.may_contain(5) && f.may_contain(9));
        assert!(!f.may_contain(4) && !f.may_contain(0) && !f.may_contain(u64::MAX));
    }
}
