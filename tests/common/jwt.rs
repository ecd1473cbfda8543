//! Test JWTs: ES256 keys with their public JWKs, and tokens signed with them.
//!
//! Include it next to `mod common;`: `#[path = "common/jwt.rs"] mod jwt;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

/// A P-256 key: its PKCS#8 PEM, and its public JWK with key id `kid`.
pub(crate) fn es256_key(kid: &str) -> (String, serde_json::Value) {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    assert_eq!((raw.len(), raw[0]), (65, 4), "uncompressed P-256 point");
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
    });
    (key.serialize_pem(), jwk)
}

/// A token from issuer `iss` for `sub`, audience `aud`, expiring `exp_in` seconds from
/// now, signed with `key` under key id `kid`.
pub(crate) fn token(
    key: &jsonwebtoken::EncodingKey,
    kid: &str,
    iss: &str,
    aud: &str,
    sub: &str,
    exp_in: i64,
) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let claims =
        serde_json::json!({ "iss": iss, "aud": aud, "sub": sub, "exp": now + exp_in, "iat": now });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}
