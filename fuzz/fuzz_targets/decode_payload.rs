//! Every request decoder: query string, content type, gzip, form, base64, JSON, NDJSON.
#![no_main]
use canopy_ingest::{Limits, RequestParts, decode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the headers; the next 64 bytes (at most) are the query string.
    let Some((&sel, rest)) = data.split_first() else { return };
    let split = rest.len().min(64);
    let (query, body) = rest.split_at(split);
    let query = String::from_utf8_lossy(query);
    let content_type = match sel % 5 {
        0 => None,
        1 => Some("application/x-www-form-urlencoded"),
        2 => Some("application/json"),
        3 => Some("text/plain;charset=UTF-8"),
        _ => Some("application/x-ndjson"),
    };
    let limits = Limits { max_decompressed_bytes: 1 << 20, ..Limits::default() };
    let _ = decode_payload(
        RequestParts { query: &query, content_type, content_encoding: (sel & 0x80 != 0).then_some("gzip"), body },
        &limits,
    );
});
