//! Property values as DataFusion expressions. A property lives in a typed column
//! (`p.s.<name>`, `p.n.<name>`, `p.b.<name>`) in segments where it is frequent, and in the
//! `props_other` JSON elsewhere (or for values of a minority type), so reading one property
//! means "the first typed column that has it, else the JSON". `canopy_prop` does that per row
//! and yields text, a number or a time; `canopy_where` evaluates a Mixpanel segmentation
//! expression over just the properties it names. Reports filter, group and aggregate on
//! these expressions inside DataFusion.

use crate::ndjson::{Strings, number_value};
use crate::{QueryError, Result};
use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Builder,
    StringViewBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::DataType;
pub use canopy_report_wire::parse_time_ms;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{Expr, ident};
use serde_json::{Map, Value};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What a property expression yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropKind {
    /// Strings as they are; numbers as JSON writes them (`3`, `2.5`); booleans `true`/`false`;
    /// lists and objects as JSON text. Not set (or JSON `null`) is SQL NULL.
    Text,
    /// Numbers only; a string is not a number here, as in Mixpanel's numeric aggregates.
    Number,
    /// ms since the epoch: RFC 3339 / `YYYY-MM-DD[THH:MM:SS]` (UTC) strings, or numbers as
    /// seconds (below 10^11) or milliseconds since the epoch.
    Time,
}

/// The columns of a table (or join) a property can be read from. `prefix` is `""` for the
/// event's own properties and `"user."` for the person's profile joined in.
pub(crate) fn property_expr(
    fields: &[String],
    prefix: &str,
    property: &str,
    kind: PropKind,
) -> Expr {
    let mut args = vec![other_column(fields, prefix)];
    for t in ["s", "n", "b"] {
        let name = format!("{prefix}p.{t}.{property}");
        if fields.contains(&name) {
            args.push(ident(name));
        }
    }
    let udf = ScalarUDF::from(PropertyUdf {
        name: format!("canopy_prop_{kind:?}({prefix}{property})").to_lowercase(),
        property: property.to_string(),
        kind,
        signature: Signature::variadic_any(Volatility::Immutable),
    });
    udf.call(args)
}

fn other_column(fields: &[String], prefix: &str) -> Expr {
    let name = format!("{prefix}props_other");
    if fields.contains(&name) {
        ident(name)
    } else {
        datafusion::prelude::lit(datafusion::common::ScalarValue::Utf8(None))
    }
}

#[derive(Debug)]
struct PropertyUdf {
    name: String,
    property: String,
    kind: PropKind,
    signature: Signature,
}

impl PartialEq for PropertyUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for PropertyUdf {}
impl Hash for PropertyUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// One typed property column of a batch.
enum Typed<'a> {
    Str(Strings<'a>),
    Num(&'a Float64Array),
    Bool(&'a BooleanArray),
}

impl<'a> Typed<'a> {
    fn of(a: &'a ArrayRef) -> datafusion::error::Result<Self> {
        if let Some(n) = a.as_any().downcast_ref::<Float64Array>() {
            return Ok(Typed::Num(n));
        }
        if let Some(b) = a.as_any().downcast_ref::<BooleanArray>() {
            return Ok(Typed::Bool(b));
        }
        Strings::of(a)
            .map(Typed::Str)
            .ok_or_else(|| DataFusionError::Plan("a property column of an unknown type".into()))
    }

    fn value(&self, row: usize) -> Option<Value> {
        match self {
            Typed::Str(a) => a.get(row).map(|s| Value::String(s.to_string())),
            Typed::Num(a) => (!a.is_null(row)).then(|| number_value(a.value(row))),
            Typed::Bool(a) => (!a.is_null(row)).then(|| Value::Bool(a.value(row))),
        }
    }
}

/// The arrays of a call, each as a full-length array.
fn arrays(args: &ScalarFunctionArgs) -> datafusion::error::Result<Vec<ArrayRef>> {
    args.args
        .iter()
        .map(|a| a.to_array(args.number_rows))
        .collect()
}

/// The named members of one row's `props_other` JSON, parsed only when the text names one.
fn from_other(json: Option<&str>, needles: &[(String, &str)], out: &mut Map<String, Value>) {
    let Some(json) = json else { return };
    if !needles
        .iter()
        .any(|(quoted, _)| json.contains(quoted.as_str()))
    {
        return;
    }
    if let Ok(mut all) = serde_json::from_str::<Map<String, Value>>(json) {
        for (_, name) in needles {
            if let Some(v) = all.remove(*name) {
                out.insert((*name).to_string(), v);
            }
        }
    }
}

fn quoted(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_default()
}

/// Text of a property value, as [`PropKind::Text`] describes.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        // `3.0` and `3` are one value, written `3` as the typed columns write it.
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() => number_value(f).to_string(),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

/// ms since the epoch of a property value, as [`PropKind::Time`] describes.
pub fn value_time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            let ms = if f.abs() < 1e11 { f * 1000.0 } else { f };
            ms.is_finite().then_some(ms as i64)
        }
        Value::String(s) => parse_time_ms(s),
        _ => None,
    }
}

impl ScalarUDFImpl for PropertyUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match self.kind {
            PropKind::Text => DataType::Utf8View,
            PropKind::Number => DataType::Float64,
            PropKind::Time => DataType::Int64,
        })
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = arrays(&args)?;
        let (other, typed) = arrays
            .split_first()
            .ok_or_else(|| DataFusionError::Plan("canopy_prop needs props_other".into()))?;
        property_values(other, typed, &self.property, self.kind).map(ColumnarValue::Array)
    }
}

/// The values of `property` for every row, from its typed columns (`p.s.*`, `p.n.*`, `p.b.*`,
/// first set one wins) and else the `props_other` JSON, as `kind` describes. Shared by the
/// DataFusion function and the column cache, so both read a property alike.
pub(crate) fn property_values(
    other: &ArrayRef,
    typed_arrays: &[ArrayRef],
    property: &str,
    kind: PropKind,
) -> datafusion::error::Result<ArrayRef> {
    let n = other.len();
    {
        let typed = typed_arrays
            .iter()
            .map(Typed::of)
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        // The common case: one typed column and nothing in the JSON.
        if other.null_count() == other.len() && typed.len() == 1 {
            match (&typed[0], kind) {
                (Typed::Num(_), PropKind::Number) => {
                    return Ok(typed_arrays[0].clone());
                }
                (Typed::Str(_), PropKind::Text) => {
                    return Ok(arrow::compute::cast(&typed_arrays[0], &DataType::Utf8View)?);
                }
                _ => {}
            }
        }
        let other = Strings::of(other);
        let needles = [(quoted(property), property)];
        let mut scratch = Map::new();
        let mut value = |row: usize| -> Option<Value> {
            if let Some(v) = typed.iter().find_map(|t| t.value(row)) {
                return Some(v);
            }
            scratch.clear();
            from_other(
                other.as_ref().and_then(|o| o.get(row)),
                &needles,
                &mut scratch,
            );
            scratch.remove(property)
        };
        let out: ArrayRef = match kind {
            PropKind::Text => {
                let mut b = StringViewBuilder::with_capacity(n);
                for row in 0..n {
                    b.append_option(value(row).as_ref().and_then(value_text));
                }
                Arc::new(b.finish())
            }
            PropKind::Number => {
                let mut b = Float64Builder::with_capacity(n);
                for row in 0..n {
                    b.append_option(value(row).and_then(|v| v.as_f64()));
                }
                Arc::new(b.finish())
            }
            PropKind::Time => {
                let mut b = Int64Builder::with_capacity(n);
                for row in 0..n {
                    b.append_option(value(row).as_ref().and_then(value_time_ms));
                }
                Arc::new(b.finish())
            }
        };
        Ok(out)
    }
}

/// A Mixpanel segmentation expression (`where`) over an events table (or a join, with the
/// event's own columns unprefixed) as a boolean DataFusion expression.
pub(crate) fn where_expr(fields: &[String], text: &str) -> Result<Expr> {
    let parsed = canopy_expr::parse(text).map_err(QueryError::Where)?;
    let props: Vec<String> = parsed.properties().into_iter().map(String::from).collect();
    let mut args = vec![other_column(fields, "")];
    let mut roles = vec![Role::Other];
    for (i, p) in props.iter().enumerate() {
        match p.as_str() {
            // As export's `where` sees them: the event time in seconds, the canonical id.
            "time" if fields.iter().any(|f| f == "time") => {
                args.push(ident("time"));
                roles.push(Role::TimeSeconds(i));
            }
            "distinct_id" if fields.iter().any(|f| f == "distinct_id") => {
                args.push(ident("distinct_id"));
                roles.push(Role::Typed(i));
            }
            _ => {
                for t in ["s", "n", "b"] {
                    let name = format!("p.{t}.{p}");
                    if fields.contains(&name) {
                        args.push(ident(name));
                        roles.push(Role::Typed(i));
                    }
                }
            }
        }
    }
    let udf = ScalarUDF::from(WhereUdf {
        name: format!("canopy_where({text})"),
        expr: parsed,
        props,
        roles,
        signature: Signature::variadic_any(Volatility::Immutable),
    });
    Ok(udf.call(args))
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Other,
    /// A column holding the value of property `i` (typed, or the canonical id).
    Typed(usize),
    /// The event time, shown to the expression in seconds.
    TimeSeconds(usize),
}

#[derive(Debug)]
struct WhereUdf {
    name: String,
    expr: canopy_expr::Expr,
    props: Vec<String>,
    roles: Vec<Role>,
    signature: Signature,
}

impl PartialEq for WhereUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for WhereUdf {}
impl Hash for WhereUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

enum Input<'a> {
    Other(Option<Strings<'a>>),
    Typed(usize, Typed<'a>),
    Time(usize, &'a TimestampMillisecondArray),
}

impl ScalarUDFImpl for WhereUdf {
    fn name(&self) -> &str {
        &self.name
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
        let n = args.number_rows;
        let arrays = arrays(&args)?;
        let mut inputs = Vec::with_capacity(arrays.len());
        for (a, role) in arrays.iter().zip(&self.roles) {
            inputs.push(match role {
                Role::Other => Input::Other(Strings::of(a)),
                Role::Typed(i) => Input::Typed(*i, Typed::of(a)?),
                Role::TimeSeconds(i) => Input::Time(
                    *i,
                    a.as_any().downcast_ref().ok_or_else(|| {
                        DataFusionError::Plan("canopy_where: time is not a timestamp".into())
                    })?,
                ),
            });
        }
        let needles: Vec<(String, &str)> =
            self.props.iter().map(|p| (quoted(p), p.as_str())).collect();
        let mut out = BooleanBuilder::with_capacity(n);
        let mut props = Map::new();
        for row in 0..n {
            props.clear();
            for input in &inputs {
                match input {
                    Input::Other(o) => {
                        from_other(o.as_ref().and_then(|o| o.get(row)), &needles, &mut props)
                    }
                    Input::Typed(i, t) => {
                        if let Some(v) = t.value(row) {
                            props.insert(self.props[*i].clone(), v);
                        }
                    }
                    Input::Time(i, t) => {
                        if !t.is_null(row) {
                            props.insert(
                                self.props[*i].clone(),
                                Value::from(t.value(row).div_euclid(1000)),
                            );
                        }
                    }
                }
            }
            out.append_value(canopy_expr::matches(&self.expr, &props));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
