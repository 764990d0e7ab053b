//! `canopy_in_set(person)`: whether a person belongs to a set computed earlier in the query
//! (a cohort's members), by hash lookup rather than a giant `IN` list.

use arrow::array::{BooleanArray, UInt64Array};
use arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::Expr;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Person keys (current keys, after merges).
pub type PersonSet = Arc<HashSet<u64>>;

#[derive(Debug)]
pub(crate) struct InSetUdf {
    members: PersonSet,
    signature: Signature,
}

impl InSetUdf {
    pub(crate) fn call(members: PersonSet, person: Expr) -> Expr {
        ScalarUDF::from(Self {
            members,
            signature: Signature::exact(vec![DataType::UInt64], Volatility::Immutable),
        })
        .call(vec![person])
    }
}

impl PartialEq for InSetUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.members, &other.members)
    }
}
impl Eq for InSetUdf {}
impl Hash for InSetUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.members) as usize).hash(state);
    }
}

impl ScalarUDFImpl for InSetUdf {
    fn name(&self) -> &str {
        "canopy_in_set"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let a = args
            .args
            .first()
            .ok_or_else(|| DataFusionError::Plan("canopy_in_set expects a person".into()))?
            .to_array(args.number_rows)?;
        let keys = a
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| DataFusionError::Plan("canopy_in_set expects UInt64".into()))?;
        let out: BooleanArray = keys
            .iter()
            .map(|k| Some(k.is_some_and(|k| self.members.contains(&k))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
