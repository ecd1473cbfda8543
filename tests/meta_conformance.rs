//! Runs the `MetaStore` conformance bodies against every backend. A new backend (etcd)
//! is one more `conformance!` line with a fixture that hands out a unique namespace.

#[macro_use]
#[path = "common/meta_conformance.rs"]
mod conformance;

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
