//! Per-project secrets derived from the project key: the salt that turns a raw identifier into
//! its 64-bit id key, and the key that seals raw identifiers at rest.

use crate::Result;
use canopy_crypto::Key;
use canopy_types::{PersonKey, ProjectId};
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct ProjectSecrets {
    salt: [u8; 32],
    seal: Key,
}

impl std::fmt::Debug for ProjectSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProjectSecrets(..)")
    }
}

impl ProjectSecrets {
    pub fn derive(project_key: &Key) -> Self {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(label);
            h.update(project_key.as_bytes());
            h.finalize().into()
        };
        Self {
            // The label predates this crate: keys written by earlier versions stay valid.
            salt: derive(b"canopy-person-key-v1"),
            seal: Key::from_bytes(derive(b"canopy-identity-seal-v1")),
        }
    }

    /// The id key of a raw identifier: a keyed hash, so keys are not guessable from ids.
    /// The empty id (events tied to nobody) maps to [`PersonKey::NONE`].
    pub fn id_key(&self, raw: &str) -> PersonKey {
        if raw.is_empty() {
            return PersonKey::NONE;
        }
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(raw.as_bytes());
        let d = h.finalize();
        let mut k = [0u8; 8];
        k.copy_from_slice(&d[..8]);
        PersonKey(u64::from_le_bytes(k).max(1))
    }

    /// Seals a raw identifier for the identity table: `nonce || AES-GCM(ciphertext)`, bound to
    /// its project and id key so a row cannot be moved onto another.
    pub fn seal(&self, project: ProjectId, id: PersonKey, raw: &str) -> Result<Vec<u8>> {
        let nonce: [u8; 12] = rand::random();
        let mut out = nonce.to_vec();
        out.extend(canopy_crypto::seal(
            &self.seal,
            &nonce,
            &aad(project, id),
            raw.as_bytes(),
        )?);
        Ok(out)
    }

    pub fn open(&self, project: ProjectId, id: PersonKey, sealed: &[u8]) -> Result<String> {
        if sealed.len() < 12 {
            return Err(crate::IdentityError::Corrupt("sealed id too short".into()));
        }
        let (nonce, ct) = sealed.split_at(12);
        let mut n = [0u8; 12];
        n.copy_from_slice(nonce);
        let plain = canopy_crypto::open(&self.seal, &n, &aad(project, id), ct)?;
        String::from_utf8(plain).map_err(|_| crate::IdentityError::Corrupt("sealed id".into()))
    }
}

fn aad(project: ProjectId, id: PersonKey) -> Vec<u8> {
    let mut a = b"canopy-id-v1".to_vec();
    a.extend(project.0.to_le_bytes());
    a.extend(id.0.to_le_bytes());
    a
}
