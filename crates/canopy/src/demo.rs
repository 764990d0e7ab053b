//! `canopy demo`: a server on a fresh data dir with a demo project loaded through the real
//! ingestion path (`/import`, the same route the SDKs use), then it keeps serving.

use crate::cli::{init_logging, wait_for_signal};
use crate::config::{Config, ServerFlags};
use crate::server;
use crate::synth::Generator;
use anyhow::{Context, Result};
use canopy_control::ControlPlane;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Days of history.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Random seed (the same seed gives the same dataset).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Load the data, print the summary and exit instead of serving.
    #[arg(long)]
    pub exit_after_load: bool,
    #[command(flatten)]
    pub flags: ServerFlags,
}

pub async fn run(mut args: DemoArgs) -> Result<()> {
    let data_dir = args
        .flags
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./canopy-demo"));
    args.flags.data_dir = Some(data_dir.clone());
    let config = Config::load(&args.flags)?;
    init_logging(&config);
    if data_dir.exists() {
        // The demo always starts fresh; its data dir (and its key) are the demo's own.
        let marker = data_dir.join("DEMO");
        if !marker.exists() && std::fs::read_dir(&data_dir)?.next().is_some() {
            anyhow::bail!(
                "{} exists and is not a demo data dir; choose another --data-dir",
                data_dir.display()
            );
        }
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("clearing {}", data_dir.display()))?;
        let _ = std::fs::remove_file(&config.master_key_file);
    }
    std::fs::create_dir_all(&data_dir)?;
    std::fs::write(
        data_dir.join("DEMO"),
        b"created by `canopy demo`; deleted and recreated by the next run\n",
    )?;
    let lock =
        server::try_lock(&data_dir)?.context("the demo data dir is locked by another process")?;
    let running = server::start(&config, lock, true).await?;
    let created = running.control.create_project("Kids & Family App (demo)")?;
    eprintln!(
        "Loading {} synthetic events through {}/import …",
        args.events, running.url
    );
    let started = std::time::Instant::now();
    load(
        &running.url,
        &created.api_secret,
        args.events,
        args.seed,
        args.days,
    )
    .await?;
    load_profiles(
        &running.url,
        &created.project.token,
        args.events,
        args.seed,
        args.days,
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "Loaded {} events in {:.1} s ({:.0} events/s).",
        args.events,
        secs,
        args.events as f64 / secs
    );
    println!();
    println!("Canopy demo is running.");
    println!("  URL:          {}", running.url);
    println!(
        "  Project:      {} ({})",
        created.project.name, created.project.id
    );
    println!("  Token:        {}", created.project.token);
    println!("  API secret:   {}", created.api_secret);
    println!("  Data dir:     {}", data_dir.display());
    println!("  Master key:   {}", config.master_key_file.display());
    println!();
    println!("Try:");
    println!(
        "  curl -u {}: '{}/api/2.0/export?from_date={}&to_date={}&limit=5'",
        created.api_secret,
        running.url,
        chrono::Utc::now().date_naive() - chrono::Days::new(args.days as u64),
        chrono::Utc::now().date_naive()
    );
    println!(
        "  curl -u {}: '{}/api/v1/persons?distinct_id=family-0000000'",
        created.api_secret, running.url
    );
    println!("  curl {}/metrics", running.url);
    if args.exit_after_load {
        return running.stop().await;
    }
    println!("Press Ctrl-C to stop.");
    wait_for_signal().await;
    running.stop().await
}

/// Sends one profile per synthetic user through `/engage`, in batches of 2000.
async fn load_profiles(url: &str, token: &str, events: u64, seed: u64, days: i64) -> Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let updates = Generator::new(seed, events, now, days).profile_updates(token);
    let client = reqwest::Client::new();
    for batch in updates.chunks(2000) {
        let resp = client
            .post(format!("{url}/engage?verbose=1"))
            .header("content-type", "application/json")
            .body(serde_json::to_string(batch)?)
            .send()
            .await?;
        let answer: serde_json::Value = resp.json().await?;
        anyhow::ensure!(answer["status"] == 1, "profile load failed: {answer}");
    }
    Ok(())
}

/// Sends the generated events in batches of 2000 over four connections.
async fn load(url: &str, secret: &str, events: u64, seed: u64, days: i64) -> Result<()> {
    let bar = ProgressBar::new(events);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let now = chrono::Utc::now().timestamp_millis();
    let (tx, rx) = tokio::sync::mpsc::channel::<(String, u64)>(8);
    let producer = tokio::task::spawn_blocking(move || {
        let mut events_iter = Generator::new(seed, events, now, days).peekable();
        while events_iter.peek().is_some() {
            let batch: Vec<serde_json::Value> = events_iter.by_ref().take(2000).collect();
            let n = batch.len() as u64;
            let body = serde_json::to_string(&batch).unwrap_or_default();
            if tx.blocking_send((body, n)).is_err() {
                break;
            }
        }
    });
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (rx, client, bar) = (rx.clone(), client.clone(), bar.clone());
        let (url, secret) = (format!("{url}/import"), secret.to_string());
        workers.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((body, n)) = next else {
                    return Ok::<(), anyhow::Error>(());
                };
                let resp = client
                    .post(&url)
                    .basic_auth(&secret, Some(""))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    resp.status().is_success(),
                    "import failed: {}",
                    resp.status()
                );
                bar.inc(n);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    producer.await?;
    bar.finish_and_clear();
    Ok(())
}
