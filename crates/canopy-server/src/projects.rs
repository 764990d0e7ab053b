//! Resolving tokens and credentials to projects, with in-memory caches (the control plane is
//! the source of truth; a project created by the CLI is found on the next cache miss).

use crate::ApiError;
use base64::Engine;
use canopy_control::{ControlPlane, Project};
use canopy_crypto::ProjectKeyring;
use canopy_types::{IdMergeMode, ProjectId};
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a verified secret, or an unknown token, is remembered.
const SECRET_TTL: Duration = Duration::from_secs(300);
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// A project plus what ingestion needs to know of its settings.
#[derive(Debug, Clone)]
pub struct ResolvedProject {
    pub project: Project,
    pub id_merge: IdMergeMode,
    /// The privacy policy compiled from the project's settings.
    pub policy: Arc<canopy_policy::Policy>,
}

pub struct Projects {
    control: Arc<dyn ControlPlane>,
    keyring: Arc<dyn ProjectKeyring>,
    by_token: RwLock<HashMap<String, (Option<ResolvedProject>, Instant)>>,
    by_secret: RwLock<HashMap<[u8; 32], (ResolvedProject, Instant)>>,
    /// Bumped by every invalidation. A lookup that read the control plane before an
    /// invalidation must not cache what it read: it may hold the settings just replaced.
    generation: AtomicU64,
}

impl Projects {
    pub fn new(control: Arc<dyn ControlPlane>, keyring: Arc<dyn ProjectKeyring>) -> Self {
        Self {
            control,
            keyring,
            by_token: RwLock::default(),
            by_secret: RwLock::default(),
            generation: AtomicU64::new(0),
        }
    }

    pub fn control(&self) -> &Arc<dyn ControlPlane> {
        &self.control
    }

    fn resolve(&self, project: Project) -> Result<ResolvedProject, ApiError> {
        // Fails early (and clearly) when the project key cannot be unwrapped.
        let key = self
            .keyring
            .project_key(project.id.0)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let (_, settings) = self.control.settings(project.id)?;
        let suppressed = self.control.suppressions(project.id)?.into_iter().collect();
        let mut h = Sha256::new();
        h.update(b"canopy-policy-hash-v1");
        h.update(key.as_bytes());
        Ok(ResolvedProject {
            project,
            id_merge: settings.id_merge,
            policy: Arc::new(canopy_policy::Policy {
                settings: settings.privacy,
                hash_salt: h.finalize().into(),
                suppressed,
            }),
        })
    }

    /// Forgets cached resolutions of `project` (its settings changed).
    pub fn invalidate(&self, project: ProjectId) {
        let mut by_token = self.by_token.write();
        let mut by_secret = self.by_secret.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        by_token.retain(|_, (p, _)| p.as_ref().is_none_or(|p| p.project.id != project));
        by_secret.retain(|_, (p, _)| p.project.id != project);
    }

    /// The project whose public token this is.
    pub fn by_token(&self, token: &str) -> Result<Option<ResolvedProject>, ApiError> {
        if let Some((p, at)) = self.by_token.read().get(token)
            && (p.is_some() || at.elapsed() < NEGATIVE_TTL)
        {
            return Ok(p.clone());
        }
        if token.len() > 128 {
            return Ok(None);
        }
        let mut attempts = 0;
        loop {
            let seen = self.generation.load(Ordering::SeqCst);
            let found = match self.control.project_by_token(token)? {
                Some(p) => Some(self.resolve(p)?),
                None => None,
            };
            let mut cache = self.by_token.write();
            attempts += 1;
            if self.generation.load(Ordering::SeqCst) != seen {
                // Settings changed while we read them: read again rather than cache the old.
                if attempts < 3 {
                    continue;
                }
                return Ok(found);
            }
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(token.to_string(), (found.clone(), Instant::now()));
            return Ok(found);
        }
    }

    pub fn by_id(&self, id: ProjectId) -> Result<Option<ResolvedProject>, ApiError> {
        match self.control.project(id)? {
            Some(p) => Ok(Some(self.resolve(p)?)),
            None => Ok(None),
        }
    }

    /// Authenticates a server-side call (`/import`, export). Accepted, as Mixpanel does:
    /// Basic `secret:` (project secret); Basic `user:secret` with `project_id` (service-account
    /// form); Basic `token:` without `project_id` (import only); and `Bearer <admin token>` with
    /// `project_id` (local CLI).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        project_id: Option<&str>,
        admin_token: Option<&str>,
        allow_token: bool,
    ) -> Result<ResolvedProject, ApiError> {
        let auth = authorization.ok_or(ApiError::Unauthorized)?;
        let wanted = match project_id.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Some(ProjectId(s.parse().map_err(|_| {
                ApiError::BadRequest("project_id must be a number".into())
            })?)),
            None => None,
        };
        if let Some(bearer) = auth.strip_prefix("Bearer ") {
            let ok = admin_token
                .is_some_and(|t| constant_time_eq(t.as_bytes(), bearer.trim().as_bytes()));
            let id = wanted.ok_or_else(|| ApiError::BadRequest("project_id is required".into()))?;
            if !ok {
                return Err(ApiError::Unauthorized);
            }
            return self.by_id(id)?.ok_or(ApiError::Unauthorized);
        }
        let basic = auth
            .strip_prefix("Basic ")
            .ok_or(ApiError::Unauthorized)?
            .trim();
        // Mixpanel accepts the credentials base64-encoded or in plain text.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| basic.to_string());
        let (user, pass) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
        let secret = if pass.is_empty() { user } else { pass };
        if let Some(p) = self.by_secret(secret)? {
            if wanted.is_some_and(|w| w != p.project.id) {
                return Err(ApiError::Unauthorized);
            }
            return Ok(p);
        }
        if allow_token
            && pass.is_empty()
            && wanted.is_none()
            && let Some(p) = self.by_token(user)?
        {
            return Ok(p);
        }
        Err(ApiError::Unauthorized)
    }

    /// Mixpanel's GDPR API: `?token=` names the project; `Authorization: Bearer` carries its
    /// API secret (Canopy's GDPR token) or the local admin token; Basic auth as elsewhere.
    pub fn authenticate_gdpr(
        &self,
        authorization: Option<&str>,
        project_token: Option<&str>,
        admin_token: Option<&str>,
    ) -> Result<ResolvedProject, ApiError> {
        let token = project_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::BadRequest("token (the project token) is required".into()))?;
        let project = self.by_token(token)?.ok_or(ApiError::Unauthorized)?;
        let auth = authorization.ok_or(ApiError::Unauthorized)?;
        let Some(bearer) = auth.strip_prefix("Bearer ").map(str::trim) else {
            let id = project.project.id.0.to_string();
            return self.authenticate(Some(auth), Some(&id), admin_token, false);
        };
        if admin_token.is_some_and(|t| constant_time_eq(t.as_bytes(), bearer.as_bytes())) {
            return Ok(project);
        }
        match self.by_secret(bearer)? {
            Some(p) if p.project.id == project.project.id => Ok(p),
            _ => Err(ApiError::Unauthorized),
        }
    }

    fn by_secret(&self, secret: &str) -> Result<Option<ResolvedProject>, ApiError> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if let Some((p, at)) = self.by_secret.read().get(&digest)
            && at.elapsed() < SECRET_TTL
        {
            return Ok(Some(p.clone()));
        }
        let seen = self.generation.load(Ordering::SeqCst);
        let Some(project) = self.control.project_by_secret(secret)? else {
            return Ok(None);
        };
        let resolved = self.resolve(project)?;
        let mut cache = self.by_secret.write();
        // As in `by_token`: what was read before an invalidation is used once, not cached.
        if self.generation.load(Ordering::SeqCst) == seen {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(digest, (resolved.clone(), Instant::now()));
        }
        Ok(Some(resolved))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
