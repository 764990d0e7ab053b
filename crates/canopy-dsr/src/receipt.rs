//! Erasure receipts: what was removed, from where, and the proof that nothing is left, signed
//! with Ed25519 so anyone holding the published public key can check a receipt offline.
//!
//! Signing input: the receipt object without its `signature` member, serialized as compact
//! JSON with object keys in sorted order (serde_json's default map is ordered; receipts hold
//! only strings, integers, booleans, arrays and objects, so this form is canonical).

use crate::{DsrError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use canopy_crypto::Key;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Serialize;
use serde_json::Value;

pub const RECEIPT_FORMAT: &str = "canopy-erasure-receipt";
pub const SIGNATURE_ALG: &str = "Ed25519";

/// The key that signs receipts (the seed lives wrapped in the control plane).
pub struct ReceiptSigner {
    key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// A public key as published at `/.well-known/canopy-receipt-keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PublishedKey {
    pub key_id: String,
    pub alg: String,
    /// The 32-byte Ed25519 public key, base64.
    pub public_key: String,
}

impl ReceiptSigner {
    pub fn from_seed(key_id: String, seed: &Key) -> Self {
        Self {
            key_id,
            key: SigningKey::from_bytes(seed.as_bytes()),
        }
    }

    pub fn published(&self) -> PublishedKey {
        PublishedKey {
            key_id: self.key_id.clone(),
            alg: SIGNATURE_ALG.into(),
            public_key: B64.encode(self.key.verifying_key().as_bytes()),
        }
    }

    /// An Ed25519 signature over `message`, base64.
    pub fn sign_raw(&self, message: &[u8]) -> String {
        B64.encode(self.key.sign(message).to_bytes())
    }

    /// The public key as PEM SubjectPublicKeyInfo (RFC 8410: the fixed Ed25519 prefix, then
    /// the 32 key bytes).
    pub fn public_key_pem(&self) -> String {
        const SPKI_PREFIX: [u8; 12] = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.verifying_key().as_bytes());
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(der)
        )
    }

    /// Returns `receipt` with a `signature` member added.
    pub fn sign(&self, receipt: &Value) -> Result<Value> {
        let Value::Object(mut fields) = receipt.clone() else {
            return Err(DsrError::Receipt("a receipt is a JSON object".into()));
        };
        fields.remove("signature");
        let message = canonical_bytes(&Value::Object(fields.clone()))?;
        let signature = self.key.sign(&message);
        fields.insert(
            "signature".into(),
            serde_json::json!({
                "alg": SIGNATURE_ALG,
                "key_id": self.key_id,
                "value": B64.encode(signature.to_bytes()),
            }),
        );
        Ok(Value::Object(fields))
    }
}

fn canonical_bytes(v: &Value) -> Result<Vec<u8>> {
    if contains_float(v) {
        return Err(DsrError::Receipt(
            "receipts hold no fractional numbers (their form would not be canonical)".into(),
        ));
    }
    serde_json::to_vec(v).map_err(|e| DsrError::Receipt(e.to_string()))
}

fn contains_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(contains_float),
        Value::Object(o) => o.values().any(contains_float),
        _ => false,
    }
}

/// What checking a receipt found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub key_id: String,
    pub request_id: String,
    /// The receipt's own verification section says nothing remained.
    pub erasure_verified: bool,
}

/// Checks a receipt's signature against the published keys (offline: no server needed).
pub fn verify_receipt(receipt: &Value, keys: &[PublishedKey]) -> Result<Verified> {
    let bad = |why: &str| DsrError::Receipt(why.to_string());
    let Value::Object(fields) = receipt else {
        return Err(bad("a receipt is a JSON object"));
    };
    if fields.get("format").and_then(Value::as_str) != Some(RECEIPT_FORMAT) {
        return Err(bad("not a Canopy erasure receipt"));
    }
    let sig = fields
        .get("signature")
        .ok_or_else(|| bad("the receipt is not signed"))?;
    if sig.get("alg").and_then(Value::as_str) != Some(SIGNATURE_ALG) {
        return Err(bad("unsupported signature algorithm"));
    }
    let key_id = sig
        .get("key_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the signature names no key"))?;
    let published = keys
        .iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| bad("the receipt was signed by a key that is not among the given keys"))?;
    let public: [u8; 32] = B64
        .decode(&published.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the public key is not 32 bytes of base64"))?;
    let public = VerifyingKey::from_bytes(&public).map_err(|_| bad("invalid public key"))?;
    let value: [u8; 64] = sig
        .get("value")
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the signature is not 64 bytes of base64"))?;
    let mut unsigned = fields.clone();
    unsigned.remove("signature");
    let message = canonical_bytes(&Value::Object(unsigned))?;
    public
        .verify_strict(&message, &Signature::from_bytes(&value))
        .map_err(|_| bad("the signature does not match: the receipt was altered or forged"))?;
    Ok(Verified {
        key_id: key_id.to_string(),
        request_id: fields
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        erasure_verified: fields
            .get("verification")
            .and_then(|v| v.get("passed"))
            .and_then(Value::as_bool)
            == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn signer() -> ReceiptSigner {
        ReceiptSigner::from_seed("k1".into(), &Key::from_bytes([7; 32]))
    }

    fn receipt() -> Value {
        json!({"format": RECEIPT_FORMAT, "version": 1, "request_id": "r1",
               "stores": {"events": {"rows_removed": 12}}, "verification": {"passed": true}})
    }

    #[test]
    fn a_signed_receipt_verifies_and_any_change_breaks_it() {
        let s = signer();
        let signed = s.sign(&receipt()).unwrap();
        let keys = [s.published()];
        let ok = verify_receipt(&signed, &keys).unwrap();
        assert_eq!((ok.request_id.as_str(), ok.erasure_verified), ("r1", true));
        // Key order in the file does not matter (the signing form sorts keys).
        let reordered: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&signed).unwrap()).unwrap();
        assert!(verify_receipt(&reordered, &keys).is_ok());
        let mut altered = signed.clone();
        altered["stores"]["events"]["rows_removed"] = json!(11);
        assert!(verify_receipt(&altered, &keys).is_err());
        let other = ReceiptSigner::from_seed("k1".into(), &Key::from_bytes([8; 32]));
        assert!(verify_receipt(&signed, &[other.published()]).is_err());
        let mut unsigned = signed.clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        assert!(verify_receipt(&unsigned, &keys).is_err());
    }

    proptest! {
        /// Arbitrary JSON never panics the verifier, and is never accepted unsigned.
        #[test]
        fn arbitrary_json_is_refused_without_panicking(text in ".{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                prop_assert!(verify_receipt(&v, &[signer().published()]).is_err());
            }
        }

        /// Changing any one field of a signed receipt is detected.
        #[test]
        fn any_field_change_is_detected(n in 0u64..1_000_000, field in "[a-z]{1,8}") {
            let s = signer();
            let mut r = receipt();
            r[field.as_str()] = json!(n);
            let signed = s.sign(&r).unwrap();
            prop_assert!(verify_receipt(&signed, &[s.published()]).is_ok() || field == "format");
            let mut altered = signed.clone();
            altered[field.as_str()] = json!(n + 1);
            prop_assert!(verify_receipt(&altered, &[s.published()]).is_err());
        }
    }
}
