//! Password credentials for SASL: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677)
//! as Kafka runs them, and PLAIN checked against the same credentials. A user's credential
//! per mechanism is kept in the metadata store (`scram/{user}/{mechanism}`): the salt, the
//! iteration count, and the stored and server keys derived from the salted password —
//! never the password. Principals are `User:{name}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::Arc;

use super::unauthenticated;
use shale_core::error::Error;
use shale_meta::{Keys, MetaStore};

/// Fewest and most PBKDF2 iterations a credential may have (Kafka's bounds).
pub const MIN_ITERATIONS: u32 = 4096;
/// See [`MIN_ITERATIONS`].
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Mechanism {
    /// Both, strongest first.
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha512, Mechanism::Sha256];

    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism a SASL name stands for.
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// A stored credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The salt, base64.
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(ClientKey), base64.
    pub stored_key: String,
    /// HMAC(SaltedPassword, "Server Key"), base64.
    pub server_key: String,
}

/// A credential's salt, stored key and server key, decoded.
type Keys3 = (Vec<u8>, Vec<u8>, Vec<u8>);

fn hmac_of(m: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(m.hmac(), key), data).as_ref().to_vec()
}

fn check_iterations(iterations: u32) -> Result<NonZeroU32, Error> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(Error::invalid(format!(
            "{iterations} iterations: a SCRAM credential takes {MIN_ITERATIONS} to {MAX_ITERATIONS}"
        )));
    }
    NonZeroU32::new(iterations).ok_or_else(|| Error::invalid("0 iterations"))
}

impl Credential {
    /// The credential of a salted password (what a Kafka admin client sends).
    pub fn from_salted(
        m: Mechanism,
        salt: &[u8],
        salted: &[u8],
        iterations: u32,
    ) -> Result<Credential, Error> {
        check_iterations(iterations)?;
        if salted.len() != m.len() || salt.is_empty() {
            return Err(Error::invalid(format!(
                "a {} salted password is {} bytes with a non-empty salt",
                m.name(),
                m.len()
            )));
        }
        let client_key = hmac_of(m, salted, b"Client Key");
        let stored_key = digest::digest(m.digest(), &client_key);
        Ok(Credential {
            salt: B64.encode(salt),
            iterations,
            stored_key: B64.encode(stored_key),
            server_key: B64.encode(hmac_of(m, salted, b"Server Key")),
        })
    }

    /// The credential of a password, with a fresh random salt.
    pub fn from_password(
        m: Mechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Credential, Error> {
        let n = check_iterations(iterations)?;
        let mut salt = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::internal("the system random source failed"))?;
        let mut salted = vec![0u8; m.len()];
        pbkdf2::derive(m.pbkdf2(), n, &salt, password.as_bytes(), &mut salted);
        Credential::from_salted(m, &salt, &salted, iterations)
    }

    fn decode(&self, what: &str) -> Result<Keys3, Error> {
        let d = |s: &str| B64.decode(s).map_err(|e| Error::internal(format!("{what}: {e}")));
        Ok((d(&self.salt)?, d(&self.stored_key)?, d(&self.server_key)?))
    }

    /// Whether `password` is the one this credential was made from (SASL/PLAIN).
    pub fn verify_password(&self, m: Mechanism, password: &str) -> Result<bool, Error> {
        let (salt, stored_key, _) = self.decode("a stored SCRAM credential")?;
        let n = check_iterations(self.iterations)?;
        let mut salted = vec![0u8; m.len()];
        pbkdf2::derive(m.pbkdf2(), n, &salt, password.as_bytes(), &mut salted);
        let client_key = hmac_of(m, &salted, b"Client Key");
        let candidate = digest::digest(m.digest(), &client_key);
        Ok(constant_eq(candidate.as_ref(), &stored_key))
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Users' credentials in the metadata store.
#[derive(Debug, Clone)]
pub struct ScramStore {
    meta: Arc<dyn MetaStore>,
    keys: Keys,
}

impl ScramStore {
    /// Credentials kept in `meta`.
    pub fn new(meta: Arc<dyn MetaStore>, keys: Keys) -> ScramStore {
        ScramStore { meta, keys }
    }

    /// A user's credential for `m`.
    pub async fn get(&self, user: &str, m: Mechanism) -> Result<Option<Credential>, Error> {
        let Some(kv) = self.meta.get(&self.keys.scram(user, m.name())).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&kv.value).map(Some).map_err(|e| {
            Error::internal(format!("the SCRAM credential of {user:?} does not decode: {e}"))
        })
    }

    /// Stores a user's credential for `m`.
    pub async fn put(&self, user: &str, m: Mechanism, c: &Credential) -> Result<(), Error> {
        check_user(user)?;
        let value = serde_json::to_vec(c).map_err(|e| Error::internal(e.to_string()))?;
        self.meta.put(&self.keys.scram(user, m.name()), value.into(), None).await?;
        Ok(())
    }

    /// Removes a user's credential for `m`; false if there was none.
    pub async fn delete(&self, user: &str, m: Mechanism) -> Result<bool, Error> {
        let key = self.keys.scram(user, m.name());
        let existed = self.meta.get(&key).await?.is_some();
        self.meta.delete(&key).await?;
        Ok(existed)
    }

    /// Every user with the mechanisms and iterations of its credentials.
    pub async fn list(&self) -> Result<Vec<(String, Vec<(Mechanism, u32)>)>, Error> {
        let prefix = self.keys.scram_all();
        let mut out: Vec<(String, Vec<(Mechanism, u32)>)> = Vec::new();
        for kv in self.meta.range(&prefix).await?.kvs {
            let Some(parts) = self.keys.components(&prefix, &kv.key) else { continue };
            let [user, mech] = parts.as_slice() else { continue };
            let (Some(m), Ok(c)) =
                (Mechanism::parse(mech), serde_json::from_slice::<Credential>(&kv.value))
            else {
                continue;
            };
            match out.last_mut().filter(|(u, _)| u == user) {
                Some((_, ms)) => ms.push((m, c.iterations)),
                None => out.push((user.clone(), vec![(m, c.iterations)])),
            }
        }
        Ok(out)
    }
}

/// A user name a credential may be stored under.
pub fn check_user(user: &str) -> Result<(), Error> {
    if user.is_empty() || user.len() > 255 || user.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "user name {user:?} is invalid: 1 to 255 characters, no control characters"
        )));
    }
    Ok(())
}

/// The error every failed password or proof gets: it does not say whether the user exists.
pub fn failed(mechanism: &str) -> Error {
    unauthenticated(format!("authentication with {mechanism} failed: invalid credentials"))
}

/// A SCRAM exchange after the server's first message, waiting for the client's final one.
#[derive(Debug, Clone)]
pub struct Exchange {
    mechanism: Mechanism,
    user: String,
    nonce: String,
    /// client-first-message-bare "," server-first-message.
    transcript: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Exchange {
    /// The user authenticating.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// `n=user` with SCRAM's escapes (`=2C` is `,`, `=3D` is `=`) undone.
fn unescape_user(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Parses a client-first message: `(user, client nonce, client-first-message-bare)`.
pub fn client_first(msg: &[u8]) -> Result<(String, String, String), Error> {
    let bad = |why: &str| Error::invalid(format!("malformed SCRAM client-first message: {why}"));
    let text = std::str::from_utf8(msg).map_err(|_| bad("not UTF-8"))?;
    let rest = text
        .strip_prefix("n,")
        .ok_or_else(|| bad("channel binding is not supported (expected n,,)"))?;
    let (authzid, bare) = rest.split_once(',').ok_or_else(|| bad("no bare part"))?;
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return Err(bad("bad authorization id"));
    }
    let mut user = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        match attr.split_once('=') {
            Some(("n", v)) => {
                user = Some(unescape_user(v).ok_or_else(|| bad("bad user name escape"))?)
            }
            Some(("r", v)) if !v.is_empty() => nonce = Some(v.to_string()),
            Some(("m", _)) => return Err(bad("mandatory extensions are not supported")),
            Some((k, _)) if k.len() > 1 => {
                // Kafka's extensions (tokenauth=true: delegation tokens) are not served.
                return Err(bad(&format!("extension {k:?} is not supported")));
            }
            _ => {}
        }
    }
    let user = user.ok_or_else(|| bad("no user name"))?;
    let nonce = nonce.ok_or_else(|| bad("no nonce"))?;
    Ok((user, nonce, bare.to_string()))
}

/// The server's first message for a credential, and the exchange to finish.
pub fn server_first(
    mechanism: Mechanism,
    user: &str,
    client_nonce: &str,
    client_first_bare: &str,
    credential: &Credential,
) -> Result<(Vec<u8>, Exchange), Error> {
    let (salt, stored_key, server_key) = credential.decode("a stored SCRAM credential")?;
    let mut raw = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| Error::internal("the system random source failed"))?;
    let nonce = format!("{client_nonce}{}", B64.encode(raw));
    let first = format!("r={nonce},s={},i={}", B64.encode(&salt), credential.iterations);
    let exchange = Exchange {
        mechanism,
        user: user.to_string(),
        nonce,
        transcript: format!("{client_first_bare},{first}"),
        stored_key,
        server_key,
    };
    Ok((first.into_bytes(), exchange))
}

/// Checks the client's final message; the server's final message (its signature).
pub fn server_final(exchange: &Exchange, msg: &[u8]) -> Result<Vec<u8>, Error> {
    let m = exchange.mechanism;
    let fail = || failed(m.name());
    let text = std::str::from_utf8(msg).map_err(|_| fail())?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(fail)?;
    let mut channel = None;
    let mut nonce = None;
    for attr in without_proof.split(',') {
        match attr.split_once('=') {
            Some(("c", v)) => channel = Some(v),
            Some(("r", v)) => nonce = Some(v),
            _ => {}
        }
    }
    // The GS2 header of a client without channel binding: "n,," or "n,a=...,".
    let gs2_ok = channel
        .and_then(|c| B64.decode(c).ok())
        .is_some_and(|h| h.starts_with(b"n,") && h.ends_with(b","));
    if !gs2_ok || nonce != Some(exchange.nonce.as_str()) {
        return Err(fail());
    }
    let proof = B64.decode(proof).map_err(|_| fail())?;
    let auth_message = format!("{},{without_proof}", exchange.transcript);
    let signature = hmac_of(m, &exchange.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Err(fail());
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    let candidate = digest::digest(m.digest(), &client_key);
    if !constant_eq(candidate.as_ref(), &exchange.stored_key) {
        return Err(fail());
    }
    let server_signature = hmac_of(m, &exchange.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
