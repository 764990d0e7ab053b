//! `canopy bench`: load generators for the benchmarks in `docs/benchmarks.md` (driven by
//! `scripts/bench-ingest`). They measure; they assert nothing.
//!
//! `bench ingest` sends the synthetic dataset to Canopy's `/track` (batches of 50, as the SDKs
//! send) or `/import` (batches of 2000), or to ClickHouse's HTTP interface as JSONEachRow, from
//! `--concurrency` connections, optionally paced to `--rate` events/s, and reports events/s and
//! acknowledgement latency percentiles. Bodies are assembled from pre-serialized events with a
//! fresh `$insert_id` spliced in, so the client spends little CPU on the shared cores.

use crate::synth::Generator;
use anyhow::{Context, Result, bail};
use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sink {
    CanopyTrack,
    CanopyImport,
    /// `/engage` profile operations ($set, $add, $union, $append, $set_once in turn).
    CanopyEngage,
    Clickhouse,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Ingestion throughput and acknowledgement latency.
    Ingest(IngestArgs),
    /// Raw export throughput (rows/s) of a Canopy server.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[arg(long, value_enum)]
    pub sink: Sink,
    /// Base URL (Canopy) or ClickHouse HTTP URL (e.g. http://127.0.0.1:8123).
    #[arg(long)]
    pub url: String,
    /// Project token (Canopy /track).
    #[arg(long, default_value = "")]
    pub token: String,
    /// API secret (Canopy /import).
    #[arg(long, default_value = "")]
    pub secret: String,
    /// ClickHouse table.
    #[arg(long, default_value = "bench.events")]
    pub table: String,
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Pace to this many events/s in total (0: as fast as acknowledgements allow).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Distinguishes runs, so insert ids never repeat across runs.
    #[arg(long, default_value = "r")]
    pub run_id: String,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub secret: String,
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ingest(a) => ingest(a).await,
        BenchCommand::Export(a) => export(a).await,
    }
}

/// Pre-serialized events, each missing its closing braces so an insert id can be appended.
fn event_pool(args: &IngestArgs) -> Vec<String> {
    let now = chrono::Utc::now().timestamp_millis();
    Generator::new(11, 20_000, now, 4)
        .map(|mut e| {
            let props = e["properties"]
                .as_object_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let mut props = Value::Object(props);
            if let Some(p) = props.as_object_mut() {
                p.remove("$insert_id");
            }
            match args.sink {
                Sink::CanopyEngage => {
                    let who = props["$user_id"].as_str().unwrap_or("u").to_string();
                    let screen = props["screen"].as_str().unwrap_or("Home").to_string();
                    let (op, value) = match props["time"].as_i64().unwrap_or(0) % 5 {
                        0 => ("$set", json!({"last_screen": screen})),
                        1 => ("$add", json!({"sessions": 1})),
                        2 => ("$union", json!({"screens": [screen]})),
                        3 => ("$append", json!({"recent": screen})),
                        _ => ("$set_once", json!({"first_screen": screen})),
                    };
                    // The insert id lands in `$mp_metadata`, which profiles ignore.
                    format!(
                        "{{\"$token\":{},\"$distinct_id\":{},\"{op}\":{value},\"$mp_metadata\":{{\"b\":1",
                        json!(args.token),
                        json!(who)
                    )
                }
                Sink::CanopyTrack | Sink::CanopyImport => {
                    if args.sink == Sink::CanopyTrack {
                        props["token"] = json!(args.token);
                    }
                    let s = json!({"event": e["event"], "properties": props}).to_string();
                    s[..s.len() - 2].to_string()
                }
                Sink::Clickhouse => {
                    let time = props["time"].as_i64().unwrap_or(now) / 1000;
                    let distinct = props["distinct_id"].as_str().unwrap_or("").to_string();
                    let row = json!({"event": e["event"], "time": time, "distinct_id": distinct,
                        "properties": props.to_string()});
                    let s = row.to_string();
                    s[..s.len() - 1].to_string()
                }
            }
        })
        .collect()
}

fn body(args: &IngestArgs, pool: &[String], seq: u64) -> String {
    let mut out = String::with_capacity(args.batch * 400);
    let clickhouse = args.sink == Sink::Clickhouse;
    if !clickhouse {
        out.push('[');
    }
    for i in 0..args.batch as u64 {
        let n = seq * args.batch as u64 + i;
        let e = &pool[(n % pool.len() as u64) as usize];
        if i > 0 && !clickhouse {
            out.push(',');
        }
        out.push_str(e);
        if clickhouse {
            out.push_str(&format!(",\"insert_id\":\"{}{n}\"}}\n", args.run_id));
        } else {
            out.push_str(&format!(",\"$insert_id\":\"{}{n}\"}}}}", args.run_id));
        }
    }
    if !clickhouse {
        out.push(']');
    }
    out
}

async fn ingest(args: IngestArgs) -> Result<()> {
    if args.batch == 0 || args.concurrency == 0 {
        bail!("--batch and --concurrency must be positive");
    }
    let pool = Arc::new(event_pool(&args));
    let args = Arc::new(args);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    // Per-worker pacing interval when a rate is set.
    let interval = (args.rate > 0).then(|| {
        Duration::from_secs_f64(args.concurrency as f64 * args.batch as f64 / args.rate as f64)
    });
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (args, pool, client, seq) = (args.clone(), pool.clone(), client.clone(), seq.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(w as f64 / args.concurrency as f64)
                });
            while Instant::now() < deadline {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let b = body(&args, &pool, n);
                let req = match args.sink {
                    Sink::CanopyTrack => client
                        .post(format!("{}/track", args.url))
                        .header("content-type", "application/json"),
                    Sink::CanopyEngage => client
                        .post(format!("{}/engage", args.url))
                        .header("content-type", "application/json"),
                    Sink::CanopyImport => client
                        .post(format!("{}/import", args.url))
                        .header("content-type", "application/json")
                        .basic_auth(&args.secret, Some("")),
                    Sink::Clickhouse => client.post(&args.url).query(&[(
                        "query",
                        format!("INSERT INTO {} FORMAT JSONEachRow", args.table),
                    )]),
                };
                let t = Instant::now();
                let ok = match req.body(b).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let events = latencies.len() as u64 * args.batch as u64;
    let report = json!({
        "sink": format!("{:?}", args.sink), "batch": args.batch, "concurrency": args.concurrency,
        "rate_target": args.rate, "seconds": elapsed, "requests": latencies.len(), "errors": errors,
        "events": events, "events_per_s": events as f64 / elapsed,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
    });
    println!("{report}");
    Ok(())
}

async fn export(args: ExportArgs) -> Result<()> {
    let client = reqwest::Client::new();
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("{}:", args.secret));
    let mut runs = Vec::new();
    let mut rows = 0u64;
    for _ in 0..args.repeat {
        let t = Instant::now();
        let resp = client
            .get(format!(
                "{}/api/2.0/export?from_date=1971-01-01&to_date=2100-01-01",
                args.url
            ))
            .header("authorization", format!("Basic {cred}"))
            .send()
            .await
            .context("export request")?;
        if !resp.status().is_success() {
            bail!("export failed: {}", resp.status());
        }
        let mut stream = resp.bytes_stream();
        let (mut lines, mut bytes) = (0u64, 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
        }
        runs.push((t.elapsed().as_secs_f64(), bytes));
        rows = lines;
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, bytes) = runs[runs.len() / 2];
    println!(
        "{}",
        json!({"rows": rows, "bytes": bytes, "median_s": median, "rows_per_s": rows as f64 / median})
    );
    Ok(())
}
