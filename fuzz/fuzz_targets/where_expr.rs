//! The export `where` expression parser and evaluator.
#![no_main]
use canopy_expr::{matches, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = parse(text) {
        let props = serde_json::json!({"a": 1, "b": "x", "c": [1, "2"], "d": null, "e": true});
        let _ = matches(&expr, props.as_object().expect("object"));
    }
});
