//! `canopy retention status|run|policy`: what retention will delete when, applying it now, and
//! the written policy for the privacy notice.

use crate::api_client::call;
use crate::config::ServerFlags;
use anyhow::Result;

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Each tier's retention period, its cut-off now, and how many events are due.
    Status {
        #[arg(long)]
        project: u64,
        #[command(flatten)]
        flags: ServerFlags,
    },
    /// Delete every event past its tier's period now (the server also does it hourly).
    Run {
        #[arg(long)]
        project: u64,
        #[command(flatten)]
        flags: ServerFlags,
    },
}

pub async fn run(cmd: RetentionCommand) -> Result<()> {
    match cmd {
        RetentionCommand::Status { project, flags } => {
            let r = call(
                &flags,
                reqwest::Method::GET,
                "/api/v1/retention",
                project,
                None,
            )
            .await?;
            println!(
                "{:<16} {:>10} {:<22} {:>10}",
                "tier", "days", "deletes before", "due now"
            );
            for t in r["tiers"].as_array().cloned().unwrap_or_default() {
                let days = t["retention_days"]
                    .as_u64()
                    .map_or("forever".to_string(), |d| d.to_string());
                println!(
                    "{:<16} {:>10} {:<22} {:>10}",
                    t["tier"].as_str().unwrap_or(""),
                    days,
                    t["deletes_events_before"].as_str().unwrap_or("-"),
                    t["events_due_now"]
                );
            }
            println!(
                "\nThe server applies retention every hour; `canopy retention run` does it now."
            );
        }
        RetentionCommand::Run { project, flags } => {
            let r = call(
                &flags,
                reqwest::Method::POST,
                "/api/v1/retention/run",
                project,
                None,
            )
            .await?;
            println!(
                "{} event(s) past their retention deleted",
                r["deleted_events"]
            );
        }
    }
    Ok(())
}
