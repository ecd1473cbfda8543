//! `[console]`: the web console's HTTP listener, beside the other listeners. The same rule
//! as theirs holds: no plaintext on an address other than loopback unless
//! `tls.allow_plaintext` says so.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};

/// The console's port on `shale standalone`.
pub const DEFAULT_CONSOLE_PORT: u16 = 8080;

/// `[console]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Address the console listener binds; none means no console.
    pub listen: Option<SocketAddr>,
    /// Pages only: every change (create, alter, delete, produce, reset) is refused, whoever
    /// asks, before the broker is asked.
    pub read_only: bool,
    /// Seconds a signed-in session lasts without a request before it must sign in again.
    pub session_idle_secs: u64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings { listen: None, read_only: false, session_idle_secs: 8 * 3600 }
    }
}

impl ConsoleSettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if !(60..=7 * 86_400).contains(&self.session_idle_secs) {
            return Err(Error::new(
                ErrorKind::Invalid,
                Reason::InvalidSetting,
                format!(
                    "setting console.session_idle_secs: {} is outside 60 ..= 604800 (a week)",
                    self.session_idle_secs
                ),
            )
            .with("key", "console.session_idle_secs"));
        }
        Ok(())
    }
}
