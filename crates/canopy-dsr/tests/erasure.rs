//! Erasure end to end over the real store, identity database and control plane: the whole
//! cluster goes, nobody else's data does, the receipt verifies, and a burst is one batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_control::{ConsentRecord, ControlKeyring, ControlPlane, SqliteControl};
use canopy_crypto::{Key, MasterKey, MasterKeySource, ProjectKeyring};
use canopy_dsr::{Dsr, DsrConfig, EraseHooks, NewRequest, Regulation, RequestKind, verify_receipt};
use canopy_identity::{IdentityStore, ResolveOptions};
use canopy_store::{Store, StoreConfig};
use canopy_types::{Event, IdMergeMode, ManualClock, PersonKey, ProjectId, Record};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn hash(purpose: &str, id: &str) -> [u8; 32] {
    Sha256::digest(format!("{purpose}:{id}").as_bytes()).into()
}

struct Hooks {
    cleared: AtomicUsize,
}

impl EraseHooks for Hooks {
    fn suppression_hashes(
        &self,
        _: ProjectId,
        ids: &[String],
    ) -> canopy_dsr::Result<Vec<[u8; 32]>> {
        Ok(ids.iter().map(|i| hash("suppression", i)).collect())
    }
    fn person_row_hashes(&self, _: ProjectId, ids: &[String]) -> canopy_dsr::Result<Vec<[u8; 32]>> {
        Ok(ids.iter().map(|i| hash("person", i)).collect())
    }
    fn clear_caches(&self, _: ProjectId) {
        self.cleared.fetch_add(1, Ordering::SeqCst);
    }
}

struct World {
    _dir: tempfile::TempDir,
    project: ProjectId,
    store: Store,
    identity: Arc<IdentityStore>,
    control: Arc<SqliteControl>,
    dsr: Dsr,
    clock: Arc<ManualClock>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let master = Arc::new(MasterKey::from_key(Key::generate(), MasterKeySource::Env));
    let control = Arc::new(SqliteControl::open(dir.path(), master).unwrap());
    let project = control.create_project("kids").unwrap().project.id;
    let keyring: Arc<dyn ProjectKeyring> = Arc::new(ControlKeyring::new(control.clone()));
    let clock = Arc::new(ManualClock::new(1_767_225_600_000));
    let mut config = StoreConfig::new(dir.path().join("data"));
    config.background = false;
    config.buckets = 4;
    let (store, _) = Store::open(config, keyring.clone(), clock.clone()).unwrap();
    let identity =
        Arc::new(IdentityStore::open(&dir.path().join("identity.db"), keyring.clone()).unwrap());
    let dsr = Dsr::new(
        store.clone(),
        identity.clone(),
        control.clone(),
        keyring,
        Arc::new(Hooks {
            cleared: AtomicUsize::new(0),
        }),
        clock.clone(),
        DsrConfig::default(),
    )
    .unwrap();
    World {
        _dir: dir,
        project,
        store,
        identity,
        control,
        dsr,
        clock,
    }
}

impl World {
    /// Tracks events the way the server does: identity first, then the store.
    fn track(&self, events: Vec<Value>) {
        let mut evs: Vec<Event> = events
            .into_iter()
            .enumerate()
            .map(|(i, props)| Event {
                project: self.project,
                name: "Play".into(),
                time_ms: 1_767_225_600_000 + i as i64 * 1000,
                distinct_id: String::new(),
                person: PersonKey::NONE,
                insert_id: String::new(),
                received_ms: 1_767_225_600_000,
                properties: props.as_object().cloned().unwrap(),
                ip: None,
            })
            .collect();
        let opts = ResolveOptions {
            mode: IdMergeMode::Simplified,
            allow_merge: false,
            replay: false,
        };
        self.identity
            .resolve_events(self.project, opts, &mut evs, 1)
            .unwrap();
        self.store
            .append_blocking(self.project, evs.into_iter().map(Record::Event).collect())
            .unwrap();
    }

    fn erase(&self, ids: &[&str]) -> String {
        self.dsr
            .submit(NewRequest {
                project: self.project,
                kind: RequestKind::Erasure,
                api: "native",
                regulation: Regulation::Gdpr,
                ids: ids.iter().map(|s| s.to_string()).collect(),
                id: None,
                submitted_ms: None,
                suppress: true,
                callbacks: vec![],
            })
            .unwrap()
            .id
    }

    fn keys_of(&self, id: &str) -> HashSet<u64> {
        let person = self.identity.lookup(self.project, id).unwrap().unwrap();
        self.identity
            .cluster_keys(self.project, person)
            .unwrap()
            .into_iter()
            .collect()
    }
}

#[test]
fn erasing_one_id_removes_the_whole_cluster_and_signs_a_receipt() {
    let w = world();
    w.track(vec![
        json!({"$device_id": "tablet-1", "canary": "zebra-anon"}),
        json!({"$device_id": "tablet-1", "$user_id": "kid-42", "canary": "zebra-login"}),
        json!({"$device_id": "phone-2", "$user_id": "kid-42"}),
        json!({"$device_id": "tablet-9", "$user_id": "other-kid"}),
    ]);
    w.store.flush_now().unwrap();
    // More after the flush: in the tail and the WAL when the erasure starts.
    w.track(vec![
        json!({"$device_id": "phone-2", "canary": "zebra-late"}),
    ]);
    let keys = w.keys_of("kid-42");
    let other = w.keys_of("other-kid");
    assert_eq!(keys.len(), 3);
    w.control
        .record_consent(
            w.project,
            &[ConsentRecord {
                id_hash: hash("person", "kid-42"),
                scope: "analytics".into(),
                granted: true,
                method: "parent_email".into(),
                notice_version: "1".into(),
                time_ms: 1,
                evidence_hash: String::new(),
                source: "api".into(),
            }],
        )
        .unwrap();

    // Erase by the anonymous device id alone.
    let id = w.erase(&["$device:tablet-1"]);
    assert_eq!(w.dsr.get(w.project, &id).unwrap().status, "pending");
    w.clock.advance(1500);
    assert_eq!(w.dsr.run_open().unwrap(), 1);

    let row = w.dsr.get(w.project, &id).unwrap();
    assert_eq!(row.status, "completed");
    assert_eq!(row.subject_sealed, None, "no identifier is kept once done");
    let receipt: Value = serde_json::from_str(row.result.as_deref().unwrap()).unwrap();
    assert_eq!(receipt["rows_removed"], 4);
    assert_eq!(receipt["verification"]["passed"], true);
    assert_eq!(receipt["verification"]["rows_remaining"], 0);
    assert_eq!(receipt["stores"]["consent_ledger"]["batch_rows_removed"], 1);
    assert_eq!(receipt["stores"]["identity"]["batch_ids_removed"], 3);
    let verified = verify_receipt(&receipt, &[w.dsr.published_key()]).unwrap();
    assert!(verified.erasure_verified);
    assert!(
        !receipt.to_string().contains("kid-42"),
        "receipts name nobody"
    );

    assert_eq!(
        w.store.count_person_rows(w.project, &keys).unwrap().total(),
        0
    );
    assert_eq!(
        w.store
            .count_person_rows(w.project, &other)
            .unwrap()
            .total(),
        1
    );
    for raw in ["kid-42", "$device:tablet-1", "$device:phone-2"] {
        assert_eq!(w.identity.lookup(w.project, raw).unwrap(), None);
    }
    // Suppressed: every id of the cluster.
    let suppressed = w.control.suppressions(w.project).unwrap();
    for raw in ["kid-42", "$device:tablet-1", "$device:phone-2"] {
        let h = hash("suppression", raw);
        assert!(suppressed.contains(&h), "{raw}");
    }
}

#[test]
fn a_burst_of_requests_is_one_batch_and_unknown_subjects_get_an_empty_receipt() {
    let w = world();
    let mut events = Vec::new();
    for i in 0..20 {
        events.push(json!({"$device_id": format!("d{i}"), "$user_id": format!("u{i}")}));
    }
    w.track(events);
    w.store.flush_now().unwrap();
    let ids: Vec<String> = (0..10).map(|i| w.erase(&[&format!("u{i}")])).collect();
    let nobody = w.erase(&["never-seen"]);
    assert_eq!(w.dsr.run_open().unwrap(), 11);
    for id in &ids {
        let r: Value =
            serde_json::from_str(w.dsr.get(w.project, id).unwrap().result.as_deref().unwrap())
                .unwrap();
        assert_eq!(r["rows_removed"], 1);
        assert_eq!(r["batch"]["requests"], 11);
        assert_eq!(
            r["stores"]["events_and_profiles"]["batch_event_rows_removed"],
            10
        );
    }
    let r: Value = serde_json::from_str(
        w.dsr
            .get(w.project, &nobody)
            .unwrap()
            .result
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            r["rows_removed"].clone(),
            r["verification"]["passed"].clone()
        ),
        (json!(0), json!(true))
    );
    assert!(w.identity.lookup(w.project, "u10").unwrap().is_some());
}

#[test]
fn an_interrupted_request_resumes_and_a_started_one_cannot_be_cancelled() {
    let w = world();
    w.track(vec![json!({"$device_id": "d1", "$user_id": "u1"})]);
    let id = w.erase(&["u1"]);
    let pending = w.erase(&["u1"]);
    assert_eq!(
        w.dsr.cancel(w.project, &pending).unwrap().status,
        "cancelled"
    );
    // As if the process died right after starting it.
    assert!(
        w.control
            .dsr_transition(&id, &["pending"], "running", 1)
            .unwrap()
    );
    assert!(w.dsr.cancel(w.project, &id).is_err());
    assert_eq!(w.dsr.run_open().unwrap(), 1);
    assert_eq!(w.dsr.get(w.project, &id).unwrap().status, "completed");
    assert_eq!(w.dsr.get(w.project, &pending).unwrap().status, "cancelled");
    assert!(w.dsr.get(ProjectId(77), &id).is_err());
}
