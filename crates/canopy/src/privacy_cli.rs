//! `canopy lint` and `canopy suppress`: the privacy lint report and the suppression list of a
//! project, through the server that holds the data dir (or one started for the command).

use crate::api_client::call;
use crate::config::ServerFlags;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    #[arg(long)]
    project: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    flags: ServerFlags,
}

#[derive(Debug, clap::Args)]
pub struct SettingsArgs {
    #[arg(long)]
    project: u64,
    /// Replace the settings with this JSON file (validated by the server; a new version).
    #[arg(long)]
    set: Option<std::path::PathBuf>,
    #[command(flatten)]
    flags: ServerFlags,
}

/// Prints a project's settings, or replaces them from a file.
pub async fn settings(args: SettingsArgs) -> Result<()> {
    let r = match &args.set {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            call(
                &args.flags,
                reqwest::Method::PUT,
                "/api/v1/settings",
                args.project,
                Some(body),
            )
            .await?
        }
        None => {
            call(
                &args.flags,
                reqwest::Method::GET,
                "/api/v1/settings",
                args.project,
                None,
            )
            .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum SuppressCommand {
    /// Suppress these distinct_ids: their events are dropped before any write.
    Add(SuppressIds),
    /// Lift the suppression of these distinct_ids.
    Remove(SuppressIds),
    /// How many ids are suppressed (only keyed hashes are stored).
    List {
        #[arg(long)]
        project: u64,
        #[command(flatten)]
        flags: ServerFlags,
    },
}

#[derive(Debug, clap::Args)]
pub struct SuppressIds {
    #[arg(long)]
    project: u64,
    #[arg(required = true)]
    distinct_ids: Vec<String>,
    #[command(flatten)]
    flags: ServerFlags,
}

pub async fn lint(args: LintArgs) -> Result<()> {
    let report = call(
        &args.flags,
        reqwest::Method::GET,
        "/api/v1/privacy/lint",
        args.project,
        None,
    )
    .await?;
    if args.json {
        println!("{report}");
        return Ok(());
    }
    let actions = report["actions"].as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        println!(
            "No privacy actions recorded for project {} since the server started.",
            args.project
        );
        return Ok(());
    }
    println!(
        "{:<32} {:<28} {:<14} {:<14} {:>8}",
        "property", "rule", "action", "tier", "count"
    );
    for a in actions {
        println!(
            "{:<32} {:<28} {:<14} {:<14} {:>8}",
            a["property"].as_str().unwrap_or(""),
            a["rule"].as_str().unwrap_or(""),
            a["action"].as_str().unwrap_or(""),
            a["tier"].as_str().unwrap_or(""),
            a["count"]
        );
    }
    Ok(())
}

pub async fn suppress(cmd: SuppressCommand) -> Result<()> {
    match cmd {
        SuppressCommand::Add(a) | SuppressCommand::Remove(a) if a.distinct_ids.len() > 5000 => {
            bail!("at most 5000 ids per call")
        }
        SuppressCommand::Add(a) => {
            let r = call(
                &a.flags,
                reqwest::Method::POST,
                "/api/v1/suppressions",
                a.project,
                Some(json!({"distinct_ids": a.distinct_ids})),
            )
            .await?;
            println!("{} id(s) newly suppressed", r["changed"]);
        }
        SuppressCommand::Remove(a) => {
            let r = call(
                &a.flags,
                reqwest::Method::DELETE,
                "/api/v1/suppressions",
                a.project,
                Some(json!({"distinct_ids": a.distinct_ids})),
            )
            .await?;
            println!("{} id(s) no longer suppressed", r["changed"]);
        }
        SuppressCommand::List { project, flags } => {
            let r = call(
                &flags,
                reqwest::Method::GET,
                "/api/v1/suppressions",
                project,
                None,
            )
            .await?;
            println!(
                "{} id(s) suppressed (stored as keyed hashes only)",
                r["count"]
            );
        }
    }
    Ok(())
}
