//! `canopy import FILE`: sends an NDJSON file (Mixpanel export format) through `/import` in
//! batches of up to 2000, recording progress after every acknowledged batch so an interrupted
//! import resumes where it stopped (and `$insert_id` dedup absorbs the batch in flight).

use crate::config::{Config, ServerFlags};
use crate::local::Target;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// NDJSON file, one `{"event":…,"properties":{…}}` per line.
    pub file: PathBuf,
    /// Project id to import into.
    #[arg(long)]
    pub project: u64,
    /// Events per request (at most 2000).
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
    /// Ignore saved progress and start from the beginning.
    #[arg(long)]
    pub restart: bool,
    #[command(flatten)]
    pub flags: ServerFlags,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    file_len: u64,
    offset: u64,
    lines: u64,
    imported: u64,
    rejected: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    file: PathBuf,
    project: u64,
    lines: u64,
    imported: u64,
    rejected: u64,
    resumed_from_line: u64,
}

fn progress_path(data_dir: &Path, file: &Path, project: u64) -> Result<PathBuf> {
    let abs = std::path::absolute(file)?;
    let digest = Sha256::digest(format!("{}\0{project}", abs.display()).as_bytes());
    Ok(data_dir
        .join("imports")
        .join(format!("{}.json", hex::encode(&digest[..12]))))
}

pub async fn run(args: ImportArgs) -> Result<()> {
    if args.batch == 0 || args.batch > 2000 {
        bail!("--batch must be between 1 and 2000");
    }
    let config = Config::load(&args.flags)?;
    let file_len = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let ppath = progress_path(&config.data_dir, &args.file, args.project)?;
    let mut progress: Progress = match std::fs::read_to_string(&ppath) {
        Ok(t) if !args.restart => serde_json::from_str(&t).unwrap_or_default(),
        _ => Progress::default(),
    };
    if progress.file_len != file_len {
        progress = Progress {
            file_len,
            ..Default::default()
        };
    }
    let resumed_from_line = progress.lines;
    let target = Target::connect(&config).await?;
    let result = send_all(&args, &target, &ppath, &mut progress).await;
    target.finish().await?;
    result?;
    let _ = std::fs::remove_file(&ppath);
    let summary = Summary {
        file: args.file.clone(),
        project: args.project,
        lines: progress.lines,
        imported: progress.imported,
        rejected: progress.rejected,
        resumed_from_line,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!(
            "imported {} events ({} rejected) from {}{}",
            summary.imported,
            summary.rejected,
            args.file.display(),
            if resumed_from_line > 0 {
                format!(", resumed at line {resumed_from_line}")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

async fn send_all(
    args: &ImportArgs,
    target: &Target,
    ppath: &Path,
    progress: &mut Progress,
) -> Result<()> {
    let mut reader = BufReader::new(std::fs::File::open(&args.file)?);
    reader.seek(SeekFrom::Start(progress.offset))?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(progress.file_len)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(progress.offset);
    let client = reqwest::Client::new();
    let url = format!(
        "{}/import?project_id={}&verbose=1",
        target.url(),
        args.project
    );
    let mut line = String::new();
    loop {
        let mut batch = String::from("[");
        let (mut n, mut consumed) = (0usize, 0u64);
        while n < args.batch {
            line.clear();
            let read = reader.read_line(&mut line)?;
            if read == 0 {
                break;
            }
            consumed += read as u64;
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if n > 0 {
                batch.push(',');
            }
            batch.push_str(t);
            n += 1;
        }
        if consumed == 0 {
            break;
        }
        batch.push(']');
        let (imported, rejected) = if n == 0 {
            (0, 0)
        } else {
            send_batch(&client, &url, target, batch, n).await?
        };
        progress.offset += consumed;
        progress.lines += n as u64;
        progress.imported += imported;
        progress.rejected += rejected;
        std::fs::create_dir_all(ppath.parent().unwrap_or(Path::new(".")))?;
        std::fs::write(ppath, serde_json::to_vec(progress)?)?;
        bar.set_position(progress.offset);
    }
    bar.finish_and_clear();
    Ok(())
}

async fn send_batch(
    client: &reqwest::Client,
    url: &str,
    target: &Target,
    body: String,
    n: usize,
) -> Result<(u64, u64)> {
    let mut delay = std::time::Duration::from_millis(200);
    for attempt in 0..8 {
        let resp = client
            .post(url)
            .bearer_auth(target.admin_token())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                let v: serde_json::Value = r.json().await.context("reading the /import answer")?;
                let rejected = v
                    .get("rejected")
                    .and_then(|r| r.as_array())
                    .map_or(0, |a| a.len()) as u64;
                if v.get("status").and_then(|s| s.as_i64()) == Some(0) && rejected == 0 {
                    bail!(
                        "the server refused the batch: {}",
                        v.get("error").unwrap_or(&serde_json::Value::Null)
                    );
                }
                return Ok((n as u64 - rejected, rejected));
            }
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                tracing::warn!(attempt, status = %r.status(), "import batch refused for now; retrying");
            }
            Ok(r) => bail!(
                "import failed: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) if attempt < 7 => {
                tracing::warn!(attempt, error = %e, "import request failed; retrying")
            }
            Err(e) => return Err(e).context("sending an import batch"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
    bail!("the server kept refusing an import batch")
}
