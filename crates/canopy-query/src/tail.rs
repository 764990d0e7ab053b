//! The tail as Arrow batches shaped like the table.

use crate::Result;
use arrow::array::{ArrayRef, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use canopy_store::{SeqUpdate, Table, TailChunk, events_to_batch, profiles_to_batch};
use std::sync::Arc;

/// `next_seq` numbers profile updates in arrival order across the tail's chunks.
pub(crate) fn chunk_batch(
    chunk: &TailChunk,
    table: Table,
    next_seq: &mut u64,
) -> Result<Option<RecordBatch>> {
    let batch = match table {
        Table::Events if !chunk.events.is_empty() => {
            let mut rows: Vec<_> = chunk.events.iter().collect();
            rows.sort_by_key(|e| (e.person.0, e.time_ms));
            events_to_batch(&rows)?
        }
        Table::ProfileUpdates if !chunk.profiles.is_empty() => {
            let rows: Vec<SeqUpdate<'_>> = chunk
                .profiles
                .iter()
                .map(|update| {
                    *next_seq += 1;
                    SeqUpdate {
                        seq: *next_seq,
                        update,
                    }
                })
                .collect();
            profiles_to_batch(&rows.iter().collect::<Vec<_>>())?
        }
        _ => return Ok(None),
    };
    Ok(Some(batch))
}

/// Reshapes `batch` to `schema`: missing columns become nulls, differing types are cast.
pub(crate) fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(cast(c, f.data_type())?),
            None => Ok(new_null_array(f.data_type(), n)),
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
