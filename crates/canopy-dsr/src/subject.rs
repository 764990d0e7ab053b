//! The subject of a request: the identifiers it names and, once resolved, the person keys
//! their rows are stored under. Held sealed in the request row while the request is open
//! (never in the clear on disk), and described in receipts only by a hash.

use crate::{DsrError, Result};
use canopy_crypto::Key;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most identifiers one request may name (Mixpanel's GDPR API allows 2,000).
pub const MAX_IDS: usize = 2000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Raw identifiers as given (distinct_id, user id, device id).
    pub ids: Vec<String>,
    /// Person keys resolved by the first attempt, so a resumed erasure still knows where the
    /// rows were after the identity rows are gone.
    #[serde(default)]
    pub keys: Vec<u64>,
    /// Every raw id of the resolved clusters (for suppression and ledger rows).
    #[serde(default)]
    pub cluster_ids: Vec<String>,
    /// `keys` and `cluster_ids` were filled (both may be empty: nobody had these ids).
    #[serde(default)]
    pub resolved: bool,
}

impl Subject {
    /// Validates the identifiers a client sent.
    pub fn new(ids: Vec<String>) -> Result<Subject> {
        let mut ids: Vec<String> = ids.into_iter().filter(|i| !i.is_empty()).collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() || ids.len() > MAX_IDS {
            return Err(DsrError::BadRequest(format!(
                "name between 1 and {MAX_IDS} non-empty identifiers"
            )));
        }
        if ids.iter().any(|i| i.len() > 255) {
            return Err(DsrError::BadRequest(
                "an identifier is longer than 255 bytes".into(),
            ));
        }
        Ok(Subject {
            ids,
            ..Default::default()
        })
    }

    /// The subject's public description: SHA-256 over the request id and the sorted ids. A
    /// controller who knows the ids can recompute it; it links no two requests.
    pub fn hash(&self, request_id: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"canopy-dsr-subject-v1\0");
        h.update(request_id.as_bytes());
        for id in &self.ids {
            h.update(b"\0");
            h.update(id.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Encrypts the subject for the request row (AES-256-GCM under a key derived from the
    /// project key, the request id as associated data).
    pub fn seal(&self, project_key: &Key, request_id: &str) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| DsrError::Internal(e.to_string()))?;
        let nonce: [u8; 12] = Key::generate().as_bytes()[..12]
            .try_into()
            .map_err(|_| DsrError::Internal("nonce".into()))?;
        let mut out = nonce.to_vec();
        out.extend(canopy_crypto::seal(
            &seal_key(project_key),
            &nonce,
            request_id.as_bytes(),
            &json,
        )?);
        Ok(out)
    }

    pub fn open(sealed: &[u8], project_key: &Key, request_id: &str) -> Result<Subject> {
        if sealed.len() < 12 {
            return Err(DsrError::Internal("sealed subject too short".into()));
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| DsrError::Internal("nonce".into()))?;
        let json = canopy_crypto::open(&seal_key(project_key), &nonce, request_id.as_bytes(), ct)?;
        serde_json::from_slice(&json).map_err(|e| DsrError::Internal(e.to_string()))
    }
}

fn seal_key(project_key: &Key) -> Key {
    let mut h = Sha256::new();
    h.update(b"canopy-dsr-subject-seal-v1");
    h.update(project_key.as_bytes());
    Key::from_bytes(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_validated_sealed_and_hashed_per_request() {
        assert!(Subject::new(vec![]).is_err());
        assert!(Subject::new(vec![String::new()]).is_err());
        assert!(Subject::new(vec!["x".repeat(256)]).is_err());
        assert!(
            Subject::new(vec!["a".into(); MAX_IDS + 1]).is_ok(),
            "duplicates collapse"
        );
        let s = Subject::new(vec!["b".into(), "a".into(), "a".into()]).unwrap();
        assert_eq!(s.ids, vec!["a", "b"]);
        assert_ne!(s.hash("r1"), s.hash("r2"));
        let key = Key::generate();
        let sealed = s.seal(&key, "r1").unwrap();
        assert!(!sealed.windows(1).any(|w| w == b"a") || sealed.len() > 12);
        assert_eq!(Subject::open(&sealed, &key, "r1").unwrap(), s);
        assert!(Subject::open(&sealed, &key, "r2").is_err());
        assert!(Subject::open(&sealed, &Key::generate(), "r1").is_err());
        assert!(Subject::open(&sealed[..5], &key, "r1").is_err());
    }
}
