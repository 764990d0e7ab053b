//! How CLI commands reach a data dir: through the server that holds it (found via
//! `server.json` and the local admin token), or by starting one in-process for the command.

use crate::config::Config;
use crate::server::{self, Running, ServerFile};
use anyhow::{Context, Result};

pub enum Target {
    Remote { url: String, admin_token: String },
    Embedded(Box<Running>),
}

impl Target {
    pub async fn connect(config: &Config) -> Result<Target> {
        match server::try_lock(&config.data_dir)? {
            None => {
                let sf: ServerFile = serde_json::from_str(
                    &std::fs::read_to_string(server::server_file(&config.data_dir))
                        .context("a server holds the data dir but its server.json is missing")?,
                )?;
                let admin_token =
                    std::fs::read_to_string(server::admin_token_file(&config.data_dir))
                        .context("reading the running server's admin token")?;
                Ok(Target::Remote {
                    url: sf.url,
                    admin_token: admin_token.trim().to_string(),
                })
            }
            Some(lock) => {
                let mut embedded = config.clone();
                embedded.listen = "127.0.0.1:0".parse()?;
                Ok(Target::Embedded(Box::new(
                    server::start(&embedded, lock, true).await?,
                )))
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Target::Remote { url, .. } => url,
            Target::Embedded(r) => &r.url,
        }
    }

    pub fn admin_token(&self) -> &str {
        match self {
            Target::Remote { admin_token, .. } => admin_token,
            Target::Embedded(r) => &r.admin_token,
        }
    }

    /// Stops an embedded server (flushing what the command wrote).
    pub async fn finish(self) -> Result<()> {
        match self {
            Target::Remote { .. } => Ok(()),
            Target::Embedded(r) => r.stop().await,
        }
    }
}
