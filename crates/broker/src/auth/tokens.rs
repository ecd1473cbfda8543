//! The static token file: one `Type:name token` pair per line, `#` comments, blank lines
//! ignored. Tokens are kept only as SHA-256 digests and looked up by digest, so neither
//! memory dumps nor the lookup's timing give a token away.

use std::collections::HashMap;
use std::path::Path;

use super::Principal;
use shale_core::error::Error;

/// Principals by the digest of their token.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    by_digest: HashMap<[u8; 32], Principal>,
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Tokens {
    /// Reads `path`; an error names the file and the line.
    pub(super) fn read(path: &Path) -> Result<Tokens, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(format!("cannot read the token file {}: {e}", path.display()))
        })?;
        Tokens::parse(&text)
            .map_err(|e| Error::invalid(format!("token file {}: {}", path.display(), e.message)))
    }

    pub(super) fn parse(text: &str) -> Result<Tokens, Error> {
        let mut by_digest = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let mut parts = line.split_whitespace();
            let (Some(principal), Some(token), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(Error::invalid(format!(
                    "line {n}: expected `Type:name token`, two fields"
                )));
            };
            let principal = Principal::parse(principal)
                .map_err(|e| Error::invalid(format!("line {n}: {}", e.message)))?;
            if token.len() < 16 {
                return Err(Error::invalid(format!(
                    "line {n}: the token of {principal} is {} characters; use at least 16",
                    token.len()
                )));
            }
            if by_digest.insert(digest(token), principal).is_some() {
                return Err(Error::invalid(format!("line {n}: this token is given twice")));
            }
        }
        Ok(Tokens { by_digest })
    }

    /// The principal a token stands for.
    pub(super) fn principal(&self, token: &str) -> Option<Principal> {
        self.by_digest.get(&digest(token)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_principals_and_bad_lines_are_named() {
        let t = Tokens::parse(
            "# ops\nUser:alice  alice-token-0123456789\n\nUser:bob bob-token-0123456789\n",
        )
        .unwrap();
        assert_eq!(t.principal("alice-token-0123456789"), Some(Principal::user("alice")));
        assert_eq!(t.principal("bob-token-0123456789"), Some(Principal::user("bob")));
        assert_eq!(t.principal("alice-token-012345678"), None);
        for (text, want) in [
            ("User:alice\n", "line 1: expected `Type:name token`"),
            ("alice some-token-0123456789\n", "line 1: principal \"alice\" is invalid"),
            ("User:a short\n", "line 1: the token of User:a is 5 characters"),
            ("User:a t-0123456789abcdef\nUser:b t-0123456789abcdef\n", "line 2: this token"),
        ] {
            let e = Tokens::parse(text).unwrap_err();
            assert!(e.message.starts_with(want), "{text:?}: {}", e.message);
        }
    }
}
