//! CLI commands talk to the server that holds the data dir (or one started for the command)
//! through its HTTP API, with the local admin token.

use crate::config::{Config, ServerFlags};
use crate::local::Target;
use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One connection to the data dir's server for the length of a command.
pub struct Session {
    target: Target,
    client: reqwest::Client,
}

impl Session {
    pub async fn open(flags: &ServerFlags) -> Result<Session> {
        let config = Config::load(flags)?;
        Ok(Session {
            target: Target::connect(&config).await?,
            client: reqwest::Client::new(),
        })
    }

    /// Calls `path` for `project`; a non-2xx answer becomes an error carrying the server's
    /// message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        project: u64,
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.target.url()))
            .bearer_auth(self.target.admin_token())
            .query(&[("project_id", project.to_string())]);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.context("contacting the server")?;
        let status = resp.status();
        let value: Value = resp.json().await.context("reading the server's answer")?;
        if !status.is_success() {
            bail!(
                "{}: {}",
                status,
                value["error"].as_str().unwrap_or("request failed")
            );
        }
        Ok(value)
    }

    /// Streams `path` (a server path, or a URL on the server) to `dest` — through a temporary
    /// file renamed at the end, so a failed download leaves nothing half-written — counting
    /// bytes on `bar`. Returns the size.
    pub async fn download(
        &self,
        path: &str,
        dest: &std::path::Path,
        bar: &indicatif::ProgressBar,
    ) -> Result<u64> {
        use std::io::Write;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.target.url())
        };
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .context("contacting the server")?;
        if !resp.status().is_success() {
            bail!("{}: the download failed", resp.status());
        }
        let tmp = dest.with_extension("part");
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut total = 0u64;
        while let Some(chunk) = resp.chunk().await.context("reading the download")? {
            file.write_all(&chunk)
                .with_context(|| format!("writing {}", tmp.display()))?;
            total += chunk.len() as u64;
            bar.set_position(total);
        }
        file.sync_all()?;
        std::fs::rename(&tmp, dest).with_context(|| format!("writing {}", dest.display()))?;
        Ok(total)
    }

    /// Ends the session (stopping an embedded server, which flushes what the command wrote).
    pub async fn finish(self) -> Result<()> {
        self.target.finish().await
    }
}

/// One call in its own session.
pub async fn call(
    flags: &ServerFlags,
    method: reqwest::Method,
    path: &str,
    project: u64,
    body: Option<Value>,
) -> Result<Value> {
    let session = Session::open(flags).await?;
    let result = session.call(method, path, project, body.as_ref()).await;
    session.finish().await?;
    result
}
