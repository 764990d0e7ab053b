//! The answers each SDK expects from `/track`, `/engage` and `/groups` (reference §4): always
//! HTTP 200; `1`/`0` as text, or `{"status":…,"error":…}` with `verbose=1`; a 1×1 GIF with
//! `img=1`; a JavaScript call with `callback=`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use canopy_ingest::{Params, Rejection};
use serde_json::{Value, json};

/// 1×1 transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// What happened to one request's items.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub accepted: usize,
    pub rejected: Vec<(usize, Rejection)>,
    /// A whole-request problem (nothing could be decoded).
    pub fatal: Option<Rejection>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.fatal.is_none() && (self.accepted > 0 || self.rejected.is_empty())
    }

    fn error_message(&self) -> Option<String> {
        if let Some(f) = &self.fatal {
            return Some(f.message.clone());
        }
        match self.rejected.as_slice() {
            [] => None,
            [(i, r)] => Some(format!("item {i}: {}", r.message)),
            [(i, r), rest @ ..] => {
                Some(format!("item {i}: {} (and {} more)", r.message, rest.len()))
            }
        }
    }
}

pub(crate) fn ingest_response(params: &Params, outcome: &Outcome) -> Response {
    let status = u8::from(outcome.ok());
    if params.img {
        return ([(header::CONTENT_TYPE, "image/gif")], PIXEL).into_response();
    }
    let body: Value = if params.verbose {
        let mut v = json!({"status": status, "error": if outcome.ok() && outcome.rejected.is_empty() {
            Value::Null
        } else {
            outcome.error_message().map(Value::String).unwrap_or(Value::Null)
        }});
        if !outcome.rejected.is_empty() {
            v["rejected"] = outcome
                .rejected
                .iter()
                .map(|(i, r)| json!({"index": i, "reason": r.reason.label(), "message": r.message}))
                .collect();
        }
        v
    } else {
        Value::from(status)
    };
    if let Some(cb) = &params.callback {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{cb}({body});"),
        )
            .into_response();
    }
    if params.verbose {
        (StatusCode::OK, axum::Json(body)).into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            status.to_string(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_ingest::Reason;

    async fn body(r: Response) -> (String, String) {
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (ct, String::from_utf8_lossy(&b).into_owned())
    }

    fn rejected() -> Outcome {
        Outcome {
            accepted: 1,
            rejected: vec![(
                2,
                Rejection::new(Reason::MissingToken, "token", "project token missing"),
            )],
            fatal: None,
        }
    }

    #[tokio::test]
    async fn each_sdk_gets_its_shape() {
        let plain = Params::default();
        assert_eq!(
            body(ingest_response(&plain, &Outcome::default())).await.1,
            "1"
        );
        let fatal = Outcome {
            fatal: Some(Rejection::new(Reason::BadJson, "data", "bad")),
            ..Default::default()
        };
        assert_eq!(body(ingest_response(&plain, &fatal)).await.1, "0");
        let verbose = Params {
            verbose: true,
            ..Default::default()
        };
        let (ct, b) = body(ingest_response(&verbose, &rejected())).await;
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["status"], 1);
        assert_eq!(v["rejected"][0]["index"], 2);
        assert_eq!(v["rejected"][0]["reason"], "missing_token");
        let jsonp = Params {
            callback: Some("mixpanel._jsc[1]".into()),
            ..Default::default()
        };
        let (ct, b) = body(ingest_response(&jsonp, &Outcome::default())).await;
        assert_eq!(
            (ct.as_str(), b.as_str()),
            ("text/javascript", "mixpanel._jsc[1](1);")
        );
        let img = Params {
            img: true,
            ..Default::default()
        };
        let (ct, b) = body(ingest_response(&img, &Outcome::default())).await;
        assert_eq!(ct, "image/gif");
        assert!(b.starts_with("GIF89a"));
    }
}
