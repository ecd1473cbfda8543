//! Runs the `MetaStore` conformance bodies against every backend: one `conformance!`
//! line per backend, with a fixture that hands out a unique namespace. The etcd backend
//! runs against one private etcd per test binary (`tests/common/etcd.rs`).

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]

#[macro_use]
#[path = "common/meta_conformance.rs"]
mod conformance;
#[path = "common/etcd.rs"]
mod etcd_server;

use std::sync::Arc;

use conformance::Fixture;
use shale::clock;
use shale::meta::EmbeddedStore;

conformance!(embedded_memory, || async {
    Fixture {
        store: EmbeddedStore::in_memory(clock::system()),
        ns: "/conformance/".into(),
        guard: Box::new(()),
    }
});

conformance!(embedded_disk, || async {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let store: Arc<EmbeddedStore> =
        EmbeddedStore::open(dir.path(), clock::system()).expect("opening the embedded store");
    Fixture { store, ns: "/conformance/".into(), guard: Box::new(dir) }
});

conformance!(etcd, || async {
    let server = etcd_server::shared();
    let ns = etcd_server::namespace("conformance");
    Fixture { store: etcd_server::connect(server).await, ns, guard: Box::new(()) }
});
