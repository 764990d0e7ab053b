//! Command-line interface.

use crate::config::{Config, ServerFlags};
use crate::local::Target;
use crate::{demo, import, server};
use anyhow::{Context, Result, bail};
use canopy_control::ControlPlane;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "canopy", version, about = "Privacy-first product analytics")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(#[command(flatten)] ServerFlags),
    /// Run a server on a fresh data dir loaded with a synthetic kids & family app dataset.
    Demo(demo::DemoArgs),
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Import an NDJSON file in Mixpanel export format (resumable).
    Import(import::ImportArgs),
    /// Export events as NDJSON in Mixpanel export format.
    Export(ExportArgs),
    /// The privacy lint report: every policy action, counted, never a value.
    Lint(crate::privacy_cli::LintArgs),
    /// The suppression list: ids whose data is dropped before any write.
    #[command(subcommand)]
    Suppress(crate::privacy_cli::SuppressCommand),
    /// Data-subject requests: erase a person with a signed receipt, follow requests, verify
    /// receipts offline.
    #[command(subcommand)]
    Dsr(crate::dsr_cli::DsrCommand),
    /// Retention: what is deleted when (per age tier), and applying it now.
    #[command(subcommand)]
    Retention(crate::retention_cli::RetentionCommand),
    /// Load generators for the benchmarks (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project; prints its id, ingestion token and API secret (shown only now).
    Create {
        name: String,
        /// Identity merging: `simplified` ($device_id/$user_id, Mixpanel's default) or
        /// `original` ($identify, $create_alias, $merge). Fixed once the project has data.
        #[arg(long, default_value = "simplified")]
        id_merge: canopy_types::IdMergeMode,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        flags: ServerFlags,
    },
    /// Show a project's settings (privacy policy included), or replace them with `--set FILE`.
    Settings(crate::privacy_cli::SettingsArgs),
    /// List projects.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        flags: ServerFlags,
    },
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Project id.
    #[arg(long)]
    project: u64,
    /// First day (yyyy-mm-dd, UTC) [default: 1971-01-01].
    #[arg(long)]
    from_date: Option<String>,
    /// Last day, inclusive [default: today].
    #[arg(long)]
    to_date: Option<String>,
    /// Only these events (repeatable).
    #[arg(long)]
    event: Vec<String>,
    /// A Mixpanel segmentation expression, e.g. 'properties["$os"] == "iOS"'.
    #[arg(long = "where")]
    where_expr: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Print a JSON summary (events, bytes) when done.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    flags: ServerFlags,
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(flags) => serve(flags).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Project { command } => project(command).await,
        Command::Import(args) => import::run(args).await,
        Command::Export(args) => export(args).await,
        Command::Bench(cmd) => crate::bench::run(cmd).await,
        Command::Lint(args) => crate::privacy_cli::lint(args).await,
        Command::Suppress(cmd) => crate::privacy_cli::suppress(cmd).await,
        Command::Dsr(cmd) => crate::dsr_cli::run(cmd).await,
        Command::Retention(cmd) => crate::retention_cli::run(cmd).await,
    }
}

pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn serve(flags: ServerFlags) -> Result<()> {
    let config = Config::load(&flags)?;
    init_logging(&config);
    let lock = server::try_lock(&config.data_dir)?.with_context(|| {
        format!(
            "another Canopy server is using {}",
            config.data_dir.display()
        )
    })?;
    let running = server::start(&config, lock, true).await?;
    eprintln!(
        "Canopy is serving on {} (data: {})",
        running.url,
        config.data_dir.display()
    );
    wait_for_signal().await;
    eprintln!("shutting down: draining requests and flushing to segments…");
    running.stop().await
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn project(command: ProjectCommand) -> Result<()> {
    match command {
        ProjectCommand::Create {
            name,
            id_merge,
            json,
            flags,
        } => {
            let config = Config::load(&flags)?;
            let opened = server::open_control(&config)?;
            let created = opened.control.create_project(&name)?;
            if id_merge != canopy_types::IdMergeMode::default() {
                let (_, mut settings) = opened.control.settings(created.project.id)?;
                settings.id_merge = id_merge;
                opened
                    .control
                    .update_settings(created.project.id, &settings)?;
            }
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!(
                    "Created project {} ({})",
                    created.project.id, created.project.name
                );
                println!("  token:      {}", created.project.token);
                println!(
                    "  API secret: {}   (shown only now; only its hash is stored)",
                    created.api_secret
                );
            }
        }
        ProjectCommand::Settings(args) => return crate::privacy_cli::settings(args).await,
        ProjectCommand::List { json, flags } => {
            let config = Config::load(&flags)?;
            let opened = server::open_control(&config)?;
            let projects = opened.control.list_projects()?;
            if json {
                println!("{}", serde_json::to_string(&projects)?);
            } else {
                for p in projects {
                    println!("{:>4}  {:32}  {}", p.id, p.token, p.name);
                }
            }
        }
    }
    Ok(())
}

async fn export(args: ExportArgs) -> Result<()> {
    let config = Config::load(&args.flags)?;
    let target = Target::connect(&config).await?;
    let today = chrono::Utc::now().date_naive().to_string();
    let mut query = vec![
        ("project_id", args.project.to_string()),
        (
            "from_date",
            args.from_date
                .clone()
                .unwrap_or_else(|| "1971-01-01".into()),
        ),
        ("to_date", args.to_date.clone().unwrap_or(today)),
    ];
    if !args.event.is_empty() {
        query.push(("event", serde_json::to_string(&args.event)?));
    }
    if let Some(w) = &args.where_expr {
        query.push(("where", w.clone()));
    }
    let result = async {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/2.0/export", target.url()))
            .bearer_auth(target.admin_token())
            .query(&query)
            .send()
            .await
            .context("contacting the server")?;
        if !resp.status().is_success() {
            bail!(
                "export failed: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        let mut out: Box<dyn Write + Send> = match &args.out {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        let (mut bytes, mut lines) = (0u64, 0u64);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("reading the export stream")?;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok((lines, bytes))
    }
    .await;
    target.finish().await?;
    let (lines, bytes) = result?;
    if args.json {
        let summary = serde_json::json!({"events": lines, "bytes": bytes, "out": args.out});
        if args.out.is_some() {
            println!("{summary}");
        } else {
            eprintln!("{summary}");
        }
    }
    Ok(())
}
