//! Access and portability requests: completing one issues a download link that works for
//! `download_ttl`; the bundle itself is built from live data when it is downloaded (so no copy
//! of the person's data is ever written outside the encrypted store). The link's token is
//! derived from the project key and the request id, never stored.

use crate::requests::Dsr;
use crate::subject::Subject;
use crate::{DsrError, Result};
use base64::Engine;
use canopy_control::DsrRow;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

impl Dsr {
    /// Marks an access request completed with its link's expiry.
    pub(crate) fn complete_access(&self, row: &DsrRow) -> Result<()> {
        let now = self.clock.now_ms();
        let expires = now + self.config.download_ttl.as_millis() as i64;
        let result = json!({"kind": "access", "expires_ms": expires}).to_string();
        self.control
            .dsr_finish(&row.id, "completed", Some(&result), None, now)?;
        Ok(())
    }

    /// The download token of an access request (derived, never stored).
    pub fn download_token(&self, row: &DsrRow) -> Result<String> {
        let key = self.keyring.project_key(row.project.0)?;
        let mut h = Sha256::new();
        h.update(b"canopy-dsr-download-v1\0");
        h.update(key.as_bytes());
        h.update(row.id.as_bytes());
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize()))
    }

    /// When the link of a completed access request stops working.
    pub fn download_expires_ms(row: &DsrRow) -> Option<i64> {
        let result: Value = serde_json::from_str(row.result.as_deref()?).ok()?;
        result.get("expires_ms")?.as_i64()
    }

    /// Checks a download link; returns the request and the identifiers to gather.
    pub fn open_download(&self, id: &str, token: &str) -> Result<(DsrRow, Vec<String>)> {
        let row = self.get_any(id)?;
        let expected = self.download_token(&row)?;
        let same = expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same || row.kind != "access" || row.status != "completed" {
            return Err(DsrError::NotFound);
        }
        let expired = Self::download_expires_ms(&row).is_none_or(|e| e < self.clock.now_ms());
        let Some(sealed) = row.subject_sealed.as_deref().filter(|_| !expired) else {
            return Err(DsrError::Conflict("this download link has expired".into()));
        };
        let key = self.keyring.project_key(row.project.0)?;
        let ids = Subject::open(sealed, &key, &row.id)?.ids;
        Ok((row, ids))
    }

    /// Forgets the identifiers behind expired download links; returns how many.
    pub fn expire_downloads(&self) -> Result<usize> {
        let cutoff = self.clock.now_ms() - self.config.download_ttl.as_millis() as i64;
        Ok(self.control.dsr_expire_access(cutoff)?)
    }
}
