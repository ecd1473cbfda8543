// A free-port picker for the test harness, included (not a module) by `mod.rs` and by
// `service.rs`, which some test binaries load side by side.

/// Ports handed out come from below the kernel's ephemeral range (32768-60999 on Linux), so
/// that no outgoing connection's local port can take one between the moment it is chosen and
/// the moment its service binds it, or while a restarted broker is down.
const PORTS: std::ops::Range<u16> = 10_000..32_768;

/// A port that was free a moment ago and that this copy of the picker has not handed out.
pub(crate) fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..10_000 {
        let random = std::hash::RandomState::new().build_hasher().finish();
        let port = PORTS.start + (random % u64::from(PORTS.end - PORTS.start)) as u16;
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port in {PORTS:?} after 10000 tries");
}
