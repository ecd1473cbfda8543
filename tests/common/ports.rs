// A free-port picker for the test harness, included (not a module) by `mod.rs` and by
// `service.rs`, which some test binaries load side by side.

/// Ports handed out come from below the kernel's ephemeral range (32768-60999 on Linux), so
/// that no outgoing connection's local port can take one between the moment it is chosen and
/// the moment its service binds it, or while a restarted broker is down.
const PORTS: std::ops::Range<u16> = 10_000..32_768;

/// A port that was free a moment ago and that no other test process has claimed: each
/// port handed out is claimed for the life of the process by a lock on a file named after
/// it (`flock`, released by the kernel when the process ends, however it ends). Without the claim,
/// nextest's other test processes (or copies run side by side) could take the port of a
/// broker while it was killed, and its restart failed "Address already in use".
pub(crate) fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static CLAIMED: std::sync::Mutex<std::collections::BTreeMap<u16, std::fs::File>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let dir = std::env::temp_dir().join("shale-test-ports");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let mut claimed = CLAIMED.lock().unwrap();
    for _ in 0..10_000 {
        let random = std::hash::RandomState::new().build_hasher().finish();
        let port = PORTS.start + (random % u64::from(PORTS.end - PORTS.start)) as u16;
        if claimed.contains_key(&port) {
            continue;
        }
        let path = dir.join(port.to_string());
        let Ok(file) = std::fs::File::options().create(true).truncate(false).write(true).open(&path)
        else {
            continue;
        };
        let lock = rustix::fs::FlockOperation::NonBlockingLockExclusive;
        if rustix::fs::flock(&file, lock).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            claimed.insert(port, file);
            return port;
        }
    }
    panic!("no free port in {PORTS:?} after 10000 tries");
}
