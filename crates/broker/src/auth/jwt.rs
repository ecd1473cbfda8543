//! Bearer tokens that are JWTs, verified against the signing keys of an OpenID Connect
//! issuer: its JWKS, fetched through `{issuer}/.well-known/openid-configuration` (or read
//! from a file), cached, refreshed every `refresh_interval_ms` and at once (at most every
//! `min_refetch_ms`) when a token names a key the cache does not hold — issuers rotate keys by
//! publishing the new one first. A token must be signed with an asymmetric algorithm by
//! one of those keys and carry `iss` equal to the issuer, `aud` containing the audience,
//! and `exp` (and `nbf`, if present) valid on the broker's clock within `leeway_secs`.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use super::{Principal, unauthenticated};
use shale_core::clock::{Instant, SharedClock};
use shale_core::error::Error;

/// `[auth.jwt]`: JWT bearer tokens from an OpenID Connect issuer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// The issuer URL; tokens must carry it as `iss`. Its keys come from
    /// `{issuer}/.well-known/openid-configuration` unless `jwks_file` is set.
    pub issuer: String,
    /// Tokens must name this in `aud`.
    pub audience: String,
    /// Read the keys (a JWKS document) from this file instead of the issuer.
    pub jwks_file: Option<PathBuf>,
    /// The claim that names the principal (`User:{value}`).
    pub principal_claim: String,
    /// How often the keys are fetched again (ms).
    pub refresh_interval_ms: u64,
    /// Clock skew allowed on `exp` and `nbf` (seconds).
    pub leeway_secs: u64,
    /// Shortest time between two fetches caused by tokens naming unknown keys (ms): a
    /// flood of tokens with made-up key ids must not become a flood of requests to the
    /// issuer.
    pub min_refetch_ms: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            issuer: String::new(),
            audience: String::new(),
            jwks_file: None,
            principal_claim: "sub".to_string(),
            refresh_interval_ms: 300_000,
            leeway_secs: 30,
            min_refetch_ms: 10_000,
        }
    }
}

impl JwtSettings {
    /// Checks the values, naming the bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.issuer.is_empty() {
            return Err(Error::invalid("auth.jwt.issuer is required: the tokens' `iss`"));
        }
        if self.audience.is_empty() {
            return Err(Error::invalid("auth.jwt.audience is required: the tokens' `aud`"));
        }
        if self.principal_claim.is_empty() {
            return Err(Error::invalid("auth.jwt.principal_claim must name a claim"));
        }
        if self.refresh_interval_ms < 1_000 {
            return Err(Error::invalid(format!(
                "auth.jwt.refresh_interval_ms {} is below 1000",
                self.refresh_interval_ms
            )));
        }
        Ok(())
    }
}

/// The cached keys and when they were read.
#[derive(Debug)]
struct Keys {
    set: JwkSet,
    read_at: Instant,
}

/// Verifies JWT bearer tokens.
#[derive(Debug)]
pub(super) struct JwtVerifier {
    settings: JwtSettings,
    clock: SharedClock,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time.
    fetching: Mutex<()>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl JwtVerifier {
    /// Reads the keys once; an error names the file or URL and what went wrong.
    pub(super) async fn new(
        settings: &JwtSettings,
        clock: SharedClock,
    ) -> Result<JwtVerifier, Error> {
        settings.validate()?;
        super::jwt_ring::install();
        // reqwest's TLS takes rustls's process default: ring, the one crypto back end.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client for JWKS: {e}")))?;
        let set = fetch(settings, &http).await?;
        let keys = RwLock::new(Keys { set, read_at: clock.instant() });
        Ok(JwtVerifier { settings: settings.clone(), clock, http, keys, fetching: Mutex::new(()) })
    }

    /// How long ago the keys were read.
    async fn age(&self) -> Duration {
        let read_at = self.keys.read().await.read_at;
        self.clock.instant().saturating_duration_since(read_at)
    }

    /// Reads the keys again (unless another caller just did); keeps the old ones on failure.
    async fn refresh(&self, min_age: Duration) {
        let _one = self.fetching.lock().await;
        if self.age().await < min_age {
            return;
        }
        match fetch(&self.settings, &self.http).await {
            Ok(set) => *self.keys.write().await = Keys { set, read_at: self.clock.instant() },
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the JWT signing keys failed; keeping the old ones");
                // Do not retry on every request while the issuer is down.
                self.keys.write().await.read_at = self.clock.instant();
            }
        }
    }

    /// The principal a token names, or why it is not valid.
    pub(super) async fn verify(&self, token: &str) -> Result<Principal, Error> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthenticated(format!("the bearer token is not a valid JWT: {e}")))?;
        if !asymmetric(header.alg) {
            return Err(unauthenticated(format!(
                "the JWT is signed with {:?}; only asymmetric algorithms are accepted",
                header.alg
            )));
        }
        let refresh = Duration::from_millis(self.settings.refresh_interval_ms);
        if self.age().await >= refresh {
            self.refresh(refresh).await;
        }
        let mut key = self.key(header.kid.as_deref()).await;
        if key.is_none() {
            self.refresh(Duration::from_millis(self.settings.min_refetch_ms)).await;
            key = self.key(header.kid.as_deref()).await;
        }
        let key = key.ok_or_else(|| {
            unauthenticated(format!(
                "the JWT's key {:?} is not among the issuer's signing keys",
                header.kid.as_deref().unwrap_or("(none)")
            ))
        })??;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Time is checked below, on the broker's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| unauthenticated(format!("the JWT is not valid here: {e}")))?;
        let claims = data.claims;
        let now = self.clock.now_ms() / 1000;
        let leeway = self.settings.leeway_secs as i64;
        let seconds = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
        match seconds("exp") {
            Some(exp) if exp + leeway > now => {}
            Some(exp) => {
                return Err(unauthenticated(format!(
                    "the JWT expired {} s ago",
                    now.saturating_sub(exp)
                )));
            }
            None => return Err(unauthenticated("the JWT's exp is not a number")),
        }
        if let Some(nbf) = seconds("nbf")
            && nbf - leeway > now
        {
            return Err(unauthenticated(format!(
                "the JWT is not valid for another {} s",
                nbf - now
            )));
        }
        let claim = &self.settings.principal_claim;
        match claims.get(claim).and_then(serde_json::Value::as_str) {
            Some(name) if !name.is_empty() => Ok(Principal::user(name)),
            _ => Err(unauthenticated(format!("the JWT has no string claim {claim:?}"))),
        }
    }

    /// The decoding key for `kid` (the only key, when the token names none).
    async fn key(&self, kid: Option<&str>) -> Option<Result<DecodingKey, Error>> {
        let keys = self.keys.read().await;
        let jwk = match kid {
            Some(kid) => keys.set.find(kid)?,
            None if keys.set.keys.len() == 1 => &keys.set.keys[0],
            None => return None,
        };
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Some(Err(unauthenticated("the JWT names a symmetric key; not accepted")));
        }
        Some(DecodingKey::from_jwk(jwk).map_err(|e| {
            unauthenticated(format!("the issuer's key {kid:?} cannot verify tokens: {e}"))
        }))
    }
}

fn asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The JWKS: from the file, or through the issuer's discovery document.
async fn fetch(settings: &JwtSettings, http: &reqwest::Client) -> Result<JwkSet, Error> {
    if let Some(path) = &settings.jwks_file {
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            Error::invalid(format!("cannot read the JWKS file {}: {e}", path.display()))
        })?;
        return serde_json::from_str(&text).map_err(|e| {
            Error::invalid(format!("{} is not a JWKS document: {e}", path.display()))
        });
    }
    let discovery =
        format!("{}/.well-known/openid-configuration", settings.issuer.trim_end_matches('/'));
    let get = |url: String| async move {
        let resp = http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Error::unavailable(format!("cannot fetch {url}: {e}")))?;
        resp.bytes().await.map_err(|e| Error::unavailable(format!("cannot read {url}: {e}")))
    };
    let body = get(discovery.clone()).await?;
    let found: Discovery = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("{discovery} is not an OpenID configuration: {e}")))?;
    let body = get(found.jwks_uri.clone()).await?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("{} is not a JWKS document: {e}", found.jwks_uri)))
}
