//! From request bytes to JSON items (reference §3.2).

use crate::params::{Params, parse_form};
use crate::{Limits, Reason, Rejection};
use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;
use std::io::Read;

/// The parts of an HTTP request the decoder needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestParts<'a> {
    /// Raw query string, without `?`.
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodedPayload {
    /// The parameters that could be read — even when the items could not, so the response
    /// can still honour `verbose` and `callback`.
    pub params: Params,
    /// The items (events or profile updates), each still raw JSON, or why there are none.
    pub items: Result<Vec<Value>, Rejection>,
}

const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes a request.
pub fn decode_payload(parts: RequestParts<'_>, limits: &Limits) -> DecodedPayload {
    let mut params = Params::from_query(parts.query);
    let items = decode_inner(parts, limits, &mut params);
    DecodedPayload { params, items }
}

fn decode_inner(
    parts: RequestParts<'_>,
    limits: &Limits,
    params: &mut Params,
) -> Result<Vec<Value>, Rejection> {
    if parts.body.len() > limits.max_body_bytes {
        return Err(Rejection::new(
            Reason::BodyTooLarge,
            "body",
            format!("request body exceeds {} bytes", limits.max_body_bytes),
        ));
    }
    let gzipped = parts
        .content_encoding
        .is_some_and(|e| e.to_ascii_lowercase().contains("gzip"))
        || parts.body.starts_with(&[0x1f, 0x8b]);
    let inflated;
    let body: &[u8] = if gzipped {
        inflated = gunzip(parts.body, limits.max_decompressed_bytes)?;
        &inflated
    } else {
        parts.body
    };
    let ct = parts.content_type.unwrap_or("").to_ascii_lowercase();
    let trimmed = trim_ascii(body);
    let looks_json = trimmed.starts_with(b"[") || trimmed.starts_with(b"{");
    let is_form = ct.starts_with("application/x-www-form-urlencoded")
        || ((ct.is_empty() || ct.starts_with("text/plain"))
            && !looks_json
            && trimmed.contains(&b'='));
    if is_form {
        params.absorb(parse_form(trimmed));
    }
    let raw: Vec<u8> = match params.data.take() {
        Some(d) => decode_data_value(&d)?,
        None if looks_json => trimmed.to_vec(),
        None => {
            return Err(Rejection::new(
                Reason::NoData,
                "data",
                "no data parameter and no JSON body",
            ));
        }
    };
    let text = std::str::from_utf8(&raw)
        .map_err(|_| Rejection::new(Reason::BadUtf8, "data", "payload is not valid UTF-8"))?;
    let items = parse_items(text)?;
    if items.len() > limits.max_items {
        return Err(Rejection::new(
            Reason::TooManyItems,
            "data",
            format!(
                "{} items in one request; the limit is {}",
                items.len(),
                limits.max_items
            ),
        ));
    }
    Ok(items)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

pub(crate) fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(body);
    decoder
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| Rejection::new(Reason::BadGzip, "body", "body is not valid gzip"))?;
    if out.len() > max {
        return Err(Rejection::new(
            Reason::DecompressedTooLarge,
            "body",
            format!("decompressed body exceeds {max} bytes"),
        ));
    }
    Ok(out)
}

/// A `data` value is JSON or base64 of JSON. Spaces come from an un-escaped `+` (Node);
/// URL-safe characters and missing padding are tolerated.
pub(crate) fn decode_data_value(d: &str) -> Result<Vec<u8>, Rejection> {
    let t = d.trim();
    if t.starts_with('[') || t.starts_with('{') {
        return Ok(t.as_bytes().to_vec());
    }
    let cleaned: String = t
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .map(|c| match c {
            ' ' | '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT_B64.decode(cleaned.as_bytes()).map_err(|_| {
        Rejection::new(
            Reason::BadBase64,
            "data",
            "data is neither JSON nor valid base64",
        )
    })
}

/// One JSON value (object or array), or NDJSON (one object per line).
fn parse_items(text: &str) -> Result<Vec<Value>, Rejection> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(_) => Err(Rejection::new(
            Reason::BadJson,
            "data",
            "payload must be a JSON object or array",
        )),
        Err(e) => {
            // NDJSON: only if every non-empty line is an object.
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() > 1 {
                let parsed: Result<Vec<Value>, _> =
                    lines.iter().map(|l| serde_json::from_str(l)).collect();
                if let Ok(items) = parsed {
                    return Ok(items);
                }
            }
            Err(Rejection::new(
                Reason::BadJson,
                "data",
                format!(
                    "payload is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use std::io::Write;

    fn decode(
        query: &str,
        ct: Option<&str>,
        ce: Option<&str>,
        body: &[u8],
    ) -> Result<Decoded, Reason> {
        let d = decode_payload(
            RequestParts {
                query,
                content_type: ct,
                content_encoding: ce,
                body,
            },
            &Limits::default(),
        );
        d.items.map(|items| Decoded { items }).map_err(|r| r.reason)
    }

    #[derive(Debug, PartialEq)]
    struct Decoded {
        items: Vec<Value>,
    }

    const ONE: &str = r#"[{"event":"a+b?","properties":{"token":"t"}}]"#;

    #[test]
    fn every_sdk_encoding_decodes_to_the_same_items() {
        let b64 = B64.encode(ONE);
        assert!(
            b64.contains('+') || b64.contains('/'),
            "test payload should exercise + or /"
        );
        let urlenc: String = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let form = "application/x-www-form-urlencoded";
        let cases: Vec<(String, Option<&str>, Vec<u8>)> = vec![
            // JS: form data=urlenc(base64)
            (
                "verbose=1&ip=1".into(),
                Some(form),
                format!("data={urlenc}").into_bytes(),
            ),
            // Python: form data=urlenc(JSON) with verbose in body
            (
                "".into(),
                Some(form),
                format!(
                    "data={}&verbose=1&ip=0",
                    ONE.replace('+', "%2B").replace('?', "%3F")
                )
                .into_bytes(),
            ),
            // Node GET ?data=b64
            (format!("ip=0&verbose=0&data={urlenc}"), None, vec![]),
            // Node batch: raw '+' in body
            (
                "ip=0".into(),
                Some(form),
                format!("data={b64}").into_bytes(),
            ),
            // Swift: raw JSON array body
            (
                "ip=1".into(),
                Some("application/json"),
                ONE.as_bytes().to_vec(),
            ),
            // sendBeacon: text/plain with data=
            (
                "".into(),
                Some("text/plain;charset=UTF-8"),
                format!("data={urlenc}").into_bytes(),
            ),
            // missing padding
            (format!("data={}", b64.trim_end_matches('=')), None, vec![]),
        ];
        for (q, ct, body) in cases {
            let d = decode(&q, ct, None, &body).unwrap_or_else(|r| panic!("{q} {ct:?}: {r:?}"));
            assert_eq!(
                d.items,
                serde_json::from_str::<Vec<Value>>(ONE).unwrap(),
                "{q} {ct:?}"
            );
        }
    }

    #[test]
    fn gzip_bodies_decode_and_bombs_are_refused() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(format!("data={}", B64.encode(ONE)).as_bytes())
            .unwrap();
        let body = gz.finish().unwrap();
        let d = decode(
            "",
            Some("application/x-www-form-urlencoded"),
            Some("gzip"),
            &body,
        )
        .unwrap();
        assert_eq!(d.items.len(), 1);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b' '; 30 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 100_000);
        assert_eq!(
            decode("", None, Some("gzip"), &bomb),
            Err(Reason::DecompressedTooLarge)
        );
        assert_eq!(
            decode("", None, Some("gzip"), b"\x1f\x8bnot gzip"),
            Err(Reason::BadGzip)
        );
    }

    #[test]
    fn malformed_inputs_get_a_reason() {
        assert_eq!(
            decode("data=%%%%", None, None, b"").err(),
            Some(Reason::BadBase64)
        );
        assert_eq!(
            decode("", Some("application/json"), None, b"[{"),
            Err(Reason::BadJson)
        );
        assert_eq!(decode("", None, None, b"").err(), Some(Reason::NoData));
        let bad_utf8 = B64.encode([0xff, 0xfe, b'[', b']']);
        assert_eq!(
            decode(&format!("data={bad_utf8}"), None, None, b""),
            Err(Reason::BadUtf8)
        );
        let many = format!("[{}]", vec!["{}"; 2001].join(","));
        assert_eq!(
            decode("", Some("application/json"), None, many.as_bytes()),
            Err(Reason::TooManyItems)
        );
    }

    #[test]
    fn ndjson_bodies_are_accepted() {
        let d = decode(
            "",
            Some("application/x-ndjson"),
            None,
            b"{\"event\":\"a\"}\n{\"event\":\"b\"}\n",
        )
        .unwrap();
        assert_eq!(d.items.len(), 2);
    }
}
