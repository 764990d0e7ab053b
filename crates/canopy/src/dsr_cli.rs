//! `canopy dsr erase|export|status|verify-receipt`: data-subject requests from the command
//! line. `erase` and `export` file the request with the server holding the data dir and follow
//! it to its receipt or its bundle; `verify-receipt` needs no server at all.

use crate::api_client::{Session, call};
use crate::config::ServerFlags;
use anyhow::{Context, Result, bail};
use canopy_dsr::{PublishedKey, verify_receipt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum DsrCommand {
    /// Erase a person (every identity linked to these ids) and save the signed receipt.
    Erase(EraseArgs),
    /// Export everything held about a person (access / portability) as a zip bundle: events,
    /// profile, identities, consent history, destinations, as JSON and CSV with a README.
    Export(ExportArgs),
    /// Show one request, or the project's latest requests.
    Status {
        #[arg(long)]
        project: u64,
        /// A request id; without it, the latest requests are listed.
        id: Option<String>,
        #[command(flatten)]
        flags: ServerFlags,
    },
    /// Offline (server stopped): search every file of the data dir, decrypted wherever a key
    /// still exists, for strings that must be gone. Exits non-zero on any hit.
    FindResidue(crate::residue::ResidueArgs),
    /// Check a receipt's signature offline against the published keys.
    VerifyReceipt {
        /// The receipt (JSON), as saved by `canopy dsr erase` or downloaded from the API.
        receipt: PathBuf,
        /// The keys document from `/.well-known/canopy-receipt-keys.json`.
        #[arg(long)]
        keys: PathBuf,
    },
}

/// Who a request is about, and how long to follow it.
#[derive(Debug, clap::Args)]
pub struct SubjectArgs {
    #[arg(long)]
    project: u64,
    /// Any identifier of the person: distinct_id, user id, or device id.
    #[arg(required = true)]
    ids: Vec<String>,
    /// gdpr, ccpa, coppa or dpdp (sets the deadline).
    #[arg(long, default_value = "gdpr")]
    regulation: String,
    /// Give up waiting after this many seconds (the request carries on in the server).
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    #[command(flatten)]
    flags: ServerFlags,
}

#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// Do not add the ids to the suppression list (later events would be stored again).
    #[arg(long)]
    no_suppress: bool,
    /// Where to write the signed receipt.
    #[arg(long, default_value = "receipt.json")]
    receipt_out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// Where to write the zip bundle.
    #[arg(long, default_value = "person-export.zip")]
    out: PathBuf,
}

pub async fn run(cmd: DsrCommand) -> Result<()> {
    match cmd {
        DsrCommand::Erase(a) => erase(a).await,
        DsrCommand::Export(a) => export(a).await,
        DsrCommand::Status { project, id, flags } => status(project, id, &flags).await,
        DsrCommand::VerifyReceipt { receipt, keys } => verify(&receipt, &keys),
        DsrCommand::FindResidue(args) => crate::residue::run(args),
    }
}

async fn erase(a: EraseArgs) -> Result<()> {
    let session = Session::open(&a.subject.flags).await?;
    let result = follow_erasure(&session, &a).await;
    session.finish().await?;
    let receipt = result?;
    std::fs::write(&a.receipt_out, serde_json::to_string_pretty(&receipt)?)
        .with_context(|| format!("writing {}", a.receipt_out.display()))?;
    println!(
        "Erased: {} row(s) removed, verification {}. Signed receipt: {}",
        receipt["rows_removed"],
        if receipt["verification"]["passed"] == true {
            "passed"
        } else {
            "FAILED"
        },
        a.receipt_out.display()
    );
    Ok(())
}

async fn follow_erasure(session: &Session, a: &EraseArgs) -> Result<Value> {
    let suppress = json!({"suppress": !a.no_suppress});
    let done = file_and_follow(session, &a.subject, "erasures", suppress).await?;
    Ok(done["receipt"].clone())
}

async fn export(a: ExportArgs) -> Result<()> {
    let session = Session::open(&a.subject.flags).await?;
    let result = fetch_export(&session, &a).await;
    session.finish().await?;
    let bytes = result?;
    println!(
        "Exported: {} ({bytes} bytes; events, profile, identities, consent and destinations \
         as JSON and CSV, README.txt explains every field).",
        a.out.display()
    );
    Ok(())
}

async fn fetch_export(session: &Session, a: &ExportArgs) -> Result<u64> {
    let done = file_and_follow(session, &a.subject, "access", json!({})).await?;
    let link = done["download_url"]
        .as_str()
        .context("the completed request has no download link")?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} downloading {bytes} ({bytes_per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let written = session.download(link, &a.out, &bar).await;
    bar.finish_and_clear();
    written
}

/// Files a request (`kind`: `erasures` or `access`; `extra` fields join the subject's) and
/// polls it until it ends; returns its final view, or an error when it failed, was cancelled
/// or outlasted the timeout.
async fn file_and_follow(
    session: &Session,
    subject: &SubjectArgs,
    kind: &str,
    mut extra: Value,
) -> Result<Value> {
    extra["distinct_ids"] = json!(subject.ids);
    extra["regulation"] = json!(subject.regulation);
    let (project, body) = (subject.project, &extra);
    let created = session
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/dsr/{kind}"),
            project,
            Some(body),
        )
        .await?;
    let id = created["id"]
        .as_str()
        .context("the server returned no request id")?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let path = format!("/api/v1/dsr/requests/{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(subject.timeout_secs);
    loop {
        let r = session
            .call(reqwest::Method::GET, &path, project, None)
            .await?;
        let status = r["status"].as_str().unwrap_or("unknown").to_string();
        bar.set_message(format!("request {id}: {status}"));
        match status.as_str() {
            "completed" => {
                bar.finish_and_clear();
                return Ok(r);
            }
            "failed" | "cancelled" => {
                bar.finish_and_clear();
                bail!(
                    "request {id} {status}: {}",
                    r["error"].as_str().unwrap_or("no detail")
                );
            }
            _ if std::time::Instant::now() > deadline => {
                bar.finish_and_clear();
                bail!("request {id} is still {status}; follow it with `canopy dsr status`");
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn status(project: u64, id: Option<String>, flags: &ServerFlags) -> Result<()> {
    let path = match &id {
        Some(id) => format!("/api/v1/dsr/requests/{id}"),
        None => "/api/v1/dsr/requests".to_string(),
    };
    let r = call(flags, reqwest::Method::GET, &path, project, None).await?;
    let rows = match id {
        Some(_) => vec![r],
        None => r["requests"].as_array().cloned().unwrap_or_default(),
    };
    println!(
        "{:<36} {:<9} {:<8} {:<10} {:<24} {:<24} overdue",
        "id", "kind", "law", "status", "received", "due"
    );
    for r in rows {
        println!(
            "{:<36} {:<9} {:<8} {:<10} {:<24} {:<24} {}",
            r["id"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            r["regulation"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["received_at"].as_str().unwrap_or(""),
            r["due_at"].as_str().unwrap_or(""),
            r["overdue"]
        );
    }
    Ok(())
}

fn verify(receipt: &PathBuf, keys: &PathBuf) -> Result<()> {
    let read = |p: &PathBuf| -> Result<Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
    };
    let receipt = read(receipt)?;
    let doc = read(keys)?;
    let keys: Vec<PublishedKey> = serde_json::from_value(doc["keys"].clone())
        .context("the keys document has no `keys` list")?;
    let ok = verify_receipt(&receipt, &keys)?;
    println!(
        "Signature valid (key {}). Request {}: erasure {}.",
        ok.key_id,
        ok.request_id,
        if ok.erasure_verified {
            "verified, nothing remained"
        } else {
            "NOT verified by the server's scan"
        }
    );
    if !ok.erasure_verified {
        bail!("the receipt does not record a passed verification");
    }
    Ok(())
}
