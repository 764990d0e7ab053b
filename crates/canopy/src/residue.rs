//! `canopy dsr find-residue`: proves (or disproves) that strings are gone from a data dir.
//! Offline — the server must be stopped — it looks everywhere a value could survive: the raw
//! bytes of every file (anything stored unencrypted, SQLite pages, temporary files), every
//! live segment decrypted with the keys the manifest still holds, records the WAL would
//! replay, and every raw id in the identity database. Hits name where, and which string by
//! its position on the command line; the strings themselves are never printed.

use crate::config::{Config, ServerFlags};
use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use canopy_control::ControlPlane;
use canopy_store::{Store, StoreConfig};
use canopy_types::SystemClock;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ResidueArgs {
    /// Strings that must not be found (canaries, identifiers, property values).
    #[arg(required = true)]
    strings: Vec<String>,
    #[command(flatten)]
    flags: ServerFlags,
}

struct Hits(Vec<serde_json::Value>);

impl Hits {
    fn check(&mut self, needles: &[String], place: &str, text: &str) {
        for (i, n) in needles.iter().enumerate() {
            if text.contains(n.as_str()) {
                self.0.push(json!({"string": i + 1, "where": place}));
            }
        }
    }
}

pub fn run(args: ResidueArgs) -> Result<()> {
    let config = Config::load(&args.flags)?;
    let Some(_lock) = crate::server::try_lock(&config.data_dir)? else {
        bail!(
            "a server holds {}; stop it first",
            config.data_dir.display()
        );
    };
    let needles = &args.strings;
    if needles.iter().any(|n| n.len() < 4) {
        bail!("each string needs at least 4 characters (shorter ones match by chance)");
    }
    let mut hits = Hits(Vec::new());
    let files = raw_scan(&config.data_dir, needles, &mut hits)?;
    let opened = crate::server::open_control(&config)?;
    let identity = canopy_identity::IdentityStore::open(
        &config.data_dir.join("identity.db"),
        opened.keyring.clone(),
    )?;
    let mut store_config = StoreConfig::new(&config.data_dir);
    store_config.background = false;
    let (store, _) = Store::open(store_config, opened.keyring.clone(), Arc::new(SystemClock))?;
    let mut segments = 0;
    for project in opened.control.list_projects()? {
        let snapshot = store.snapshot(project.id);
        for s in &snapshot.segments {
            segments += 1;
            let key = store.segment_key(s)?;
            let place = format!("segment {}", s.file.display());
            for batch in canopy_store::read_segment(&store.segment_path(s), &key, s.id)? {
                for column in batch.columns() {
                    for_each_text(column.as_ref(), |t| hits.check(needles, &place, t));
                }
            }
        }
        for chunk in &snapshot.tail {
            for e in &chunk.events {
                hits.check(needles, "write-ahead log (event)", &format!("{e:?}"));
            }
            for p in &chunk.profiles {
                hits.check(needles, "write-ahead log (profile)", &format!("{p:?}"));
            }
        }
        for raw in identity.all_raw_ids(project.id)? {
            hits.check(
                needles,
                &format!("identity.db (project {})", project.id.0),
                &raw,
            );
        }
    }
    // Opening the store replayed the WAL into memory only; leave the dir as it was found.
    drop(store);
    let found = hits.0.len();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "files_scanned": files,
            "segments_decrypted": segments,
            "hits": hits.0,
        }))?
    );
    if found > 0 {
        bail!("{found} residue hit(s)");
    }
    Ok(())
}

/// Every string value of a column (and of the JSON text in `props_other`).
fn for_each_text(column: &dyn Array, f: impl FnMut(&str)) {
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().flatten().for_each(f),
        DataType::LargeUtf8 => column.as_string::<i64>().iter().flatten().for_each(f),
        DataType::Utf8View => column.as_string_view().iter().flatten().for_each(f),
        DataType::Dictionary(_, _) => {
            if let Some(d) = column.as_any_dictionary_opt() {
                for_each_text(d.values().as_ref(), f);
            }
        }
        _ => {}
    }
}

/// Searches the raw bytes of every file under `dir`; returns how many files were read.
fn raw_scan(dir: &Path, needles: &[String], hits: &mut Hits) -> Result<usize> {
    let mut stack = vec![dir.to_path_buf()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            n += 1;
            let place = format!(
                "raw bytes of {}",
                path.strip_prefix(dir).unwrap_or(&path).display()
            );
            for (i, needle) in needles.iter().enumerate() {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.0.push(json!({"string": i + 1, "where": place}));
                }
            }
        }
    }
    Ok(n)
}
