//! A small world for sync tests: a store, some in-memory systems linked
//! two-way through the CRM, and helpers to run rounds and read contacts.

use std::collections::BTreeMap;
use std::sync::Arc;

use synchub_core::merge::MergePolicy;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, DeletePolicy, Direction, Engine, RunOptions, RunReport};
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

pub struct World {
    pub db: TestDb,
    store: std::sync::Mutex<Store>,
    pub systems: Vec<(String, MemorySystem)>,
    pub policy: MergePolicy,
    pub deletes: DeletePolicy,
}

pub fn person(name: &str, email: &str) -> Record {
    Record::Contact(Contact {
        full_name: Some(name.into()),
        emails: vec![email.into()],
        ..Contact::default()
    })
}

pub fn set_company(v: &str) -> impl FnOnce(&mut Record) + '_ {
    move |r| {
        if let Record::Contact(c) = r {
            c.company = Some(v.into());
        }
    }
}

pub fn company(r: &Record) -> Option<String> {
    r.as_contact().and_then(|c| c.company.clone())
}

impl World {
    pub async fn new(backend: &str, names: &[&str], policy: MergePolicy) -> World {
        let db = TestDb::of(backend).await;
        let store = db.store().await;
        World {
            db,
            store: std::sync::Mutex::new(store),
            systems: names
                .iter()
                .map(|n| (n.to_string(), MemorySystem::new(n)))
                .collect(),
            policy,
            deletes: DeletePolicy::Delete,
        }
    }

    /// The store (a handle; cheap to clone).
    pub fn store(&self) -> Store {
        self.store.lock().unwrap().clone()
    }

    /// What a killed process leaves behind: every connection closed (open
    /// transactions die with them), then the store opened afresh.
    pub async fn restart(&self) {
        let old = self.store();
        old.close().await;
        // The killed run's stream leases and outbox claims run out (their
        // TTL passes) before the next process starts.
        let fresh = self.db.store().await;
        sqlx::query("UPDATE stream_lease SET expires_at = ''")
            .execute(fresh.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE outbox SET claimed_by = NULL, claim_until = NULL")
            .execute(fresh.pool())
            .await
            .unwrap();
        fresh.close().await;
        let fresh = self.db.store().await;
        *self.store.lock().unwrap() = fresh;
    }

    pub fn sys(&self, name: &str) -> &MemorySystem {
        &self
            .systems
            .iter()
            .find(|(n, _)| n == name)
            .expect("system")
            .1
    }

    /// An engine over every system, pulled in the given order (all when empty).
    pub fn engine_in(&self, order: &[usize]) -> Engine {
        let order: Vec<usize> = if order.is_empty() {
            (0..self.systems.len()).collect()
        } else {
            order.to_vec()
        };
        let conns = order
            .iter()
            .map(|&i| {
                let (name, sys) = &self.systems[i];
                Connection {
                    name: name.clone(),
                    connector: Arc::new(sys.connector(3)),
                    direction: Direction::TwoWay,
                    objects: vec![ObjectKind::Contact],
                    region: Some("TW".into()),
                }
            })
            .collect();
        Engine::new(
            self.store(),
            "sync-test",
            conns,
            self.policy.clone(),
            BTreeMap::from([(ObjectKind::Contact, self.deletes)]),
        )
    }

    pub async fn round_in(&self, order: &[usize]) -> RunReport {
        let r = self
            .engine_in(order)
            .run(&RunOptions::default())
            .await
            .expect("run");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r
    }

    pub async fn round(&self) -> RunReport {
        self.round_in(&[]).await
    }

    pub fn writes(&self) -> Vec<u64> {
        self.systems.iter().map(|(_, s)| s.writes()).collect()
    }

    /// Runs rounds until one writes nothing anywhere (CRM and systems); fails
    /// when that takes more than `max` rounds.
    pub async fn settle(&self, max: usize) {
        for _ in 0..max {
            let before = self.writes();
            let r = self.round().await;
            if r.writes() == 0 && self.writes() == before {
                return;
            }
        }
        panic!("no quiet round after {max} rounds");
    }

    /// The one live record of `email` in a system (panics on duplicates).
    pub fn find(&self, system: &str, email: &str) -> Option<(String, Record)> {
        let hits: Vec<(String, Record)> = self
            .sys(system)
            .live(ObjectKind::Contact)
            .into_iter()
            .filter(|(_, r)| {
                r.as_contact()
                    .is_some_and(|c| c.emails.iter().any(|e| e == email))
            })
            .collect();
        assert!(hits.len() <= 1, "{system} holds {email} twice: {hits:#?}");
        hits.into_iter().next()
    }

    /// Some live record of `email` in a system (mid-run states may hold a
    /// copy waiting for review next to a new one).
    pub fn find_any(&self, system: &str, email: &str) -> Option<(String, Record)> {
        self.sys(system)
            .live(ObjectKind::Contact)
            .into_iter()
            .find(|(_, r)| {
                r.as_contact()
                    .is_some_and(|c| c.emails.iter().any(|e| e == email))
            })
    }

    /// The one live CRM contact of `email` (panics on duplicates).
    pub async fn crm(&self, email: &str) -> Option<Record> {
        let hits: Vec<Record> = self
            .store()
            .records(ObjectKind::Contact, false)
            .await
            .expect("records")
            .into_iter()
            .map(|s| s.record)
            .filter(|r| {
                r.as_contact()
                    .is_some_and(|c| c.emails.iter().any(|e| e == email))
            })
            .collect();
        assert!(hits.len() <= 1, "the CRM holds {email} twice: {hits:#?}");
        hits.into_iter().next()
    }

    /// The company of `email` in the CRM and in every system, in order.
    pub async fn companies(&self, email: &str) -> Vec<Option<String>> {
        let mut out = vec![self.crm(email).await.as_ref().and_then(company)];
        for (name, _) in &self.systems {
            out.push(
                self.find(name, email)
                    .as_ref()
                    .and_then(|(_, r)| company(r)),
            );
        }
        out
    }
}
