//! Identity applied at query time: `canopy_person(person)` maps the key an event was stored
//! under to its person's current key (merges are retroactive without rewriting segments), and
//! `canopy_distinct_id(person)` shows the person's canonical id, looked up in the identity
//! store once per distinct person of a batch.

use arrow::array::{Array, ArrayRef, StringBuilder, UInt64Array};
use arrow::datatypes::DataType;
use canopy_identity::IdentityStore;
use canopy_types::ProjectId;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

fn person_array(args: &ScalarFunctionArgs) -> datafusion::error::Result<ArrayRef> {
    let arg = args
        .args
        .first()
        .ok_or_else(|| DataFusionError::Plan("expects one argument".into()))?;
    arg.to_array(args.number_rows)
}

fn u64s(a: &ArrayRef) -> datafusion::error::Result<&UInt64Array> {
    a.as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| DataFusionError::Plan("expects a UInt64 person key".into()))
}

/// Stored person key → current person key.
#[derive(Debug)]
pub(crate) struct ResolvePerson {
    aliases: Arc<HashMap<u64, u64>>,
    signature: Signature,
}

impl ResolvePerson {
    pub(crate) fn udf(aliases: Arc<HashMap<u64, u64>>) -> ScalarUDF {
        ScalarUDF::from(Self {
            aliases,
            signature: Signature::exact(vec![DataType::UInt64], Volatility::Immutable),
        })
    }
}

impl PartialEq for ResolvePerson {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.aliases, &other.aliases)
    }
}
impl Eq for ResolvePerson {}
impl Hash for ResolvePerson {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.aliases) as usize).hash(state);
    }
}

impl ScalarUDFImpl for ResolvePerson {
    fn name(&self) -> &str {
        "canopy_person"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let array = person_array(&args)?;
        if self.aliases.is_empty() {
            return Ok(ColumnarValue::Array(array));
        }
        let keys = u64s(&array)?;
        let mapped: UInt64Array = keys
            .iter()
            .map(|k| k.map(|k| *self.aliases.get(&k).unwrap_or(&k)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(mapped)))
    }
}

/// Person key → the distinct_id users expect (the cluster's canonical id).
#[derive(Debug)]
pub(crate) struct DisplayId {
    identity: Arc<IdentityStore>,
    project: ProjectId,
    signature: Signature,
}

impl DisplayId {
    pub(crate) fn udf(identity: Arc<IdentityStore>, project: ProjectId) -> ScalarUDF {
        ScalarUDF::from(Self {
            identity,
            project,
            signature: Signature::exact(vec![DataType::UInt64], Volatility::Immutable),
        })
    }
}

impl PartialEq for DisplayId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.identity, &other.identity) && self.project == other.project
    }
}
impl Eq for DisplayId {}
impl Hash for DisplayId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.identity) as usize).hash(state);
        self.project.hash(state);
    }
}

impl ScalarUDFImpl for DisplayId {
    fn name(&self) -> &str {
        "canopy_distinct_id"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        if let Some(ColumnarValue::Scalar(ScalarValue::UInt64(Some(p)))) = args.args.first() {
            let ids = self
                .identity
                .display_ids(self.project, &[*p])
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let s = ids.get(p).map(|s| s.to_string());
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(s)));
        }
        let array = person_array(&args)?;
        let keys = u64s(&array)?;
        // Batches are sorted by person: look each one up once.
        let mut distinct: Vec<u64> = keys.iter().flatten().collect();
        distinct.dedup();
        let ids = self
            .identity
            .display_ids(self.project, &distinct)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut out = StringBuilder::with_capacity(keys.len(), keys.len() * 16);
        for k in keys.iter() {
            match k {
                Some(k) => out.append_value(ids.get(&k).map_or("", |s| s.as_ref())),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
