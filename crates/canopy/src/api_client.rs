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
