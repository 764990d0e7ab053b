//! The access / portability bundle (issue #6 item 3): a zip of everything Canopy holds about a
//! person — events, profile, identities, consent history, destinations (none yet) — as JSON and
//! CSV, with a README explaining every file and field. Gathered from live data when the link
//! is followed and streamed out as it is written (nothing lands on disk).

use crate::{ApiError, AppState};
use canopy_control::{ConsentRecord, DsrRow};
use canopy_identity::ProfileState;
use canopy_types::{Event, ProjectId};
use serde_json::{Value, json};
use std::io::Write;

/// Most events one bundle carries per person (a person with more gets the newest, and the
/// README says so).
const MAX_EVENTS: usize = 5_000_000;

/// One identity cluster's data.
#[derive(Default)]
pub(crate) struct PersonData {
    ids: Vec<String>,
    profile: Option<ProfileState>,
    events: Vec<Event>,
    consent: Vec<ConsentRecord>,
}

/// Reads everything held about the people behind `ids`.
pub(crate) async fn gather(
    state: &AppState,
    project: ProjectId,
    ids: &[String],
) -> Result<Vec<PersonData>, ApiError> {
    let mut persons = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let policy = state
        .projects
        .by_id(project)?
        .ok_or(ApiError::NotFound)?
        .policy;
    for raw in ids {
        let Some(person) = state.identity.lookup(project, raw)? else {
            continue;
        };
        if !seen.insert(person) {
            continue;
        }
        let cluster = state.identity.cluster_ids(project, person)?;
        let (profile, mut events) = state
            .queries
            .person_view(project, person, MAX_EVENTS)
            .await?;
        events.reverse();
        let mut consent = Vec::new();
        for id in &cluster {
            consent.extend(
                state
                    .projects
                    .control()
                    .consent(project, Some(policy.tier_key(id)))?,
            );
        }
        consent.sort_by_key(|c| c.time_ms);
        persons.push(PersonData {
            ids: cluster,
            profile,
            events,
            consent,
        });
    }
    Ok(persons)
}

fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn csv_bytes(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> std::io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(std::io::Error::other)?;
    for r in rows {
        w.write_record(&r).map_err(std::io::Error::other)?;
    }
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn event_json(e: &Event, canonical: &str) -> Value {
    let mut props = e.properties.clone();
    props.insert("time".into(), json!(e.time_ms));
    props.insert("distinct_id".into(), json!(canonical));
    if !e.insert_id.is_empty() {
        props.insert("$insert_id".into(), json!(e.insert_id));
    }
    json!({"event": e.name, "received_at": iso(e.received_ms), "properties": props})
}

/// Writes the bundle as a zip to `out` (a non-seekable stream).
pub(crate) fn write_zip(
    row: &DsrRow,
    persons: &[PersonData],
    now_ms: i64,
    out: impl Write,
) -> std::io::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        zip.start_file(name, options)
            .map_err(std::io::Error::other)?;
        zip.write_all(bytes)
    };
    put("README.txt", readme(row, persons, now_ms).as_bytes())?;
    // Nobody found: the same files, empty, so the bundle matches its README.
    let nobody = [PersonData::default()];
    let persons = if persons.is_empty() {
        &nobody[..]
    } else {
        persons
    };
    for (i, p) in persons.iter().enumerate() {
        let dir = if persons.len() == 1 {
            String::new()
        } else {
            format!("person-{}/", i + 1)
        };
        let canonical = p.ids.first().map(String::as_str).unwrap_or("");
        let events: Vec<Value> = p.events.iter().map(|e| event_json(e, canonical)).collect();
        put(
            &format!("{dir}events.json"),
            &serde_json::to_vec_pretty(&events)?,
        )?;
        put(
            &format!("{dir}events.csv"),
            &csv_bytes(
                &[
                    "time",
                    "event",
                    "distinct_id",
                    "insert_id",
                    "received_at",
                    "properties",
                ],
                p.events.iter().map(|e| {
                    vec![
                        iso(e.time_ms),
                        e.name.clone(),
                        canonical.to_string(),
                        e.insert_id.clone(),
                        iso(e.received_ms),
                        Value::Object(e.properties.clone()).to_string(),
                    ]
                }),
            )?,
        )?;
        let profile = p.profile.as_ref().filter(|s| s.exists);
        let props = profile.map(|s| s.properties.clone()).unwrap_or_default();
        put(
            &format!("{dir}profile.json"),
            &serde_json::to_vec_pretty(&json!({
                "properties": props,
                "last_seen": profile.and_then(|s| s.last_seen_ms).map(iso),
            }))?,
        )?;
        put(
            &format!("{dir}profile.csv"),
            &csv_bytes(
                &["property", "value"],
                props.iter().map(|(k, v)| vec![k.clone(), v.to_string()]),
            )?,
        )?;
        let ids: Vec<Value> = p
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"id": id, "canonical": i == 0}))
            .collect();
        put(
            &format!("{dir}identities.json"),
            &serde_json::to_vec_pretty(&ids)?,
        )?;
        put(
            &format!("{dir}identities.csv"),
            &csv_bytes(
                &["id", "canonical"],
                p.ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| vec![id.clone(), (i == 0).to_string()]),
            )?,
        )?;
        let consent: Vec<Value> = p
            .consent
            .iter()
            .map(|c| {
                json!({"scope": c.scope, "granted": c.granted, "method": c.method,
                       "notice_version": c.notice_version, "time": iso(c.time_ms),
                       "evidence_hash": c.evidence_hash, "source": c.source})
            })
            .collect();
        put(
            &format!("{dir}consent.json"),
            &serde_json::to_vec_pretty(&consent)?,
        )?;
        put(
            &format!("{dir}consent.csv"),
            &csv_bytes(
                &[
                    "time",
                    "scope",
                    "granted",
                    "method",
                    "notice_version",
                    "evidence_hash",
                    "source",
                ],
                p.consent.iter().map(|c| {
                    vec![
                        iso(c.time_ms),
                        c.scope.clone(),
                        c.granted.to_string(),
                        c.method.clone(),
                        c.notice_version.clone(),
                        c.evidence_hash.clone(),
                        c.source.clone(),
                    ]
                }),
            )?,
        )?;
        put(&format!("{dir}destinations.json"), b"[]\n")?;
        put(
            &format!("{dir}destinations.csv"),
            &csv_bytes(
                &["destination", "first_sent", "last_sent", "events"],
                std::iter::empty(),
            )?,
        )?;
    }
    zip.finish().map_err(std::io::Error::other)?;
    Ok(())
}

fn readme(row: &DsrRow, persons: &[PersonData], now_ms: i64) -> String {
    let events: usize = persons.iter().map(|p| p.events.len()).sum();
    let truncated = persons.iter().any(|p| p.events.len() >= MAX_EVENTS);
    format!(
        "Your data, as held by this Canopy analytics server\n\
         ===================================================\n\n\
         Request {id} ({regulation}), received {received}; this copy was generated {now}.\n\
         It holds everything stored about the person behind the identifiers in the request:\n\
         {people} identity cluster(s), {events} event(s){truncated}.\n\
         Each file comes as JSON and as CSV (UTF-8, RFC 4180) with the same content.\n\n\
         events.json / events.csv\n\
           Every event recorded for you, oldest first.\n\
           time         when the event happened (UTC, ISO 8601, milliseconds)\n\
           event        the event's name, as the app sent it\n\
           distinct_id  the identifier the events are shown under (your main id)\n\
           insert_id    the app's unique id for the event (used to drop duplicates)\n\
           received_at  when the server received it\n\
           properties   the event's properties (JSON), after the privacy policy removed what\n\
                        it does not allow to be stored (for example contact details or\n\
                        precise location for children); IP addresses are never stored\n\n\
         profile.json / profile.csv\n\
           Your profile: each property the app set (property, value as JSON) and when it was\n\
           last updated (last_seen). Empty if the app kept no profile.\n\n\
         identities.json / identities.csv\n\
           Every identifier linked to you (devices, accounts, aliases); canonical marks the one\n\
           your data is shown under.\n\n\
         consent.json / consent.csv\n\
           Every consent decision recorded for you, oldest first: scope (what it covers), granted\n\
           (true = given, false = withdrawn), method (how it was collected, e.g. a parent's\n\
           email confirmation), notice_version (the privacy notice shown), time, evidence_hash (a\n\
           hash of the proof kept by the app), source (which system recorded it).\n\n\
         destinations.json / destinations.csv\n\
           Other services your data was sent to by this server: none (this server sends data\n\
           nowhere).\n\n\
         Not included because it is not kept: raw IP addresses, data about you stored only in\n\
         aggregate form without any identifier. To have all of this erased, ask the app for an\n\
         erasure; you will receive a signed receipt.\n",
        id = row.id,
        regulation = row.regulation.to_ascii_uppercase(),
        received = iso(row.received_ms),
        now = iso(now_ms),
        people = persons.len(),
        events = events,
        truncated = if truncated {
            format!(" (the newest {MAX_EVENTS} per person)")
        } else {
            String::new()
        },
    )
}

/// A `Write` that hands 64 KiB chunks to an HTTP body stream (from a blocking thread).
pub(crate) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(64 << 10),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}
