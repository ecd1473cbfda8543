//! LazyFS mounts for the power-loss soaks: a second opinion, never part of CI. With
//! `SHALE_POWER_LOSS_LAZYFS` naming a LazyFS build (`../shared/tools/lazyfs/build.sh`
//! prints it), the power-cut tests put each broker's data dir on its own LazyFS mount and
//! run the brokers on the real disk; a power cut is SIGKILL, then `clear-cache`, which
//! drops every byte the broker wrote and did not fsync (directory entries stay, LazyFS's
//! caveat). Without the variable the tests use the project's own tracking disk.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The LazyFS build to use, if the soak asks for one.
pub(crate) fn home() -> Option<PathBuf> {
    std::env::var_os("SHALE_POWER_LOSS_LAZYFS").map(PathBuf::from)
}

/// One mounted LazyFS; unmounted (dropping unsynced data) on drop.
#[derive(Debug)]
pub(crate) struct LazyFs {
    home: PathBuf,
    mnt: tempfile::TempDir,
    _root: tempfile::TempDir,
    _fifo: tempfile::TempDir,
}

fn run(script: &Path, args: &[&Path]) -> String {
    let out = Command::new(script).args(args).output().expect("run a lazyfs script");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl LazyFs {
    /// Mounts a fresh LazyFS from the build in `home`.
    pub(crate) fn mount(home: &Path) -> LazyFs {
        let (root, mnt, fifo) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let fifo_path = fifo.path().join("faults");
        run(&home.join("lazyfs-mount.sh"), &[root.path(), mnt.path(), &fifo_path]);
        LazyFs { home: home.to_path_buf(), mnt, _root: root, _fifo: fifo }
    }

    /// The mount point: a broker's data dir.
    pub(crate) fn path(&self) -> &Path {
        self.mnt.path()
    }

    /// Drops everything written and not fsynced (call it after killing the broker).
    pub(crate) fn power_cut(&self) {
        run(&self.home.join("lazyfs-ctl.sh"), &[self.mnt.path(), Path::new("clear-cache")]);
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = Command::new(self.home.join("lazyfs-umount.sh")).arg(self.mnt.path()).status();
    }
}
