//! Test JWTs: ES256 keys with their public JWKs, and tokens signed with them (by ring, the
//! broker's own crypto back end; the broker only checks signatures).
//!
//! Include it next to `mod common;`: `#[path = "common/jwt.rs"] mod jwt;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// A P-256 signing key (its PKCS#8 document).
pub(crate) struct Es256Key(Vec<u8>);

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A new P-256 key, and its public JWK with key id `kid`.
pub(crate) fn es256_key(kid: &str) -> (Es256Key, serde_json::Value) {
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    assert_eq!((raw.len(), raw[0]), (65, 4), "uncompressed P-256 point");
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
    });
    (Es256Key(key.serialize_der()), jwk)
}

/// A token from issuer `iss` for `sub`, audience `aud`, expiring `exp_in` seconds from
/// now, signed with `key` under key id `kid`.
pub(crate) fn token(
    key: &Es256Key,
    kid: &str,
    iss: &str,
    aud: &str,
    sub: &str,
    exp_in: i64,
) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let claims =
        serde_json::json!({ "iss": iss, "aud": aud, "sub": sub, "exp": now + exp_in, "iat": now });
    let signed =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.0, &rng).unwrap();
    let signature = pair.sign(&rng, signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(signature.as_ref()))
}
