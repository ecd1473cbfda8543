//! JWT signatures checked with ring, the one crypto back end of the broker (its TLS, SCRAM
//! and S3 signing use it too): a [`CryptoProvider`] for `jsonwebtoken`, whose own back ends
//! are aws-lc (a C library whose build cost a fresh build two minutes of CPU) and
//! RustCrypto (a second back end). The broker only checks tokens signed with asymmetric
//! algorithms (RSA PKCS#1 and PSS, ECDSA P-256 and P-384, Ed25519); it never signs.

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as sig;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes ring `jsonwebtoken`'s provider for this process, before the first token is
/// checked. A provider installed earlier by the embedding program stays.
pub(super) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = PROVIDER.install_default();
    });
}

fn no_signer(alg: &Algorithm, _key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(ErrorKind::Provider(format!("the broker checks {alg:?} signatures; it does not sign"))
        .into())
}

/// What `alg` is checked with, for a key given as DER (RSA) or as the raw public key
/// (ECDSA's uncompressed point, Ed25519's 32 bytes); `None` for a symmetric algorithm.
fn algorithm(alg: Algorithm) -> Option<(AlgorithmFamily, &'static dyn sig::VerificationAlgorithm)> {
    Some(match alg {
        Algorithm::RS256 => (AlgorithmFamily::Rsa, &sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => (AlgorithmFamily::Rsa, &sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => (AlgorithmFamily::Rsa, &sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => (AlgorithmFamily::Rsa, &sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => (AlgorithmFamily::Rsa, &sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => (AlgorithmFamily::Rsa, &sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => (AlgorithmFamily::Ec, &sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => (AlgorithmFamily::Ec, &sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => (AlgorithmFamily::Ed, &sig::ED25519),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
    })
}

/// The same for an RSA key given as its modulus and exponent (a JWK's `n` and `e`).
fn rsa_parameters(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let Some((family, _)) = algorithm(*alg) else {
        return Err(ErrorKind::Provider(format!("{alg:?} is not checked here")).into());
    };
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier { alg: *alg, key: key.clone() }))
}

/// Checks signatures of one algorithm with one key.
struct RingVerifier {
    alg: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match self.key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let params = rsa_parameters(self.alg).ok_or_else(signature::Error::new)?;
                sig::RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
            }
            DecodingKeyKind::SecretOrDer(key) => {
                let (_, alg) = algorithm(self.alg).ok_or_else(signature::Error::new)?;
                sig::UnparsedPublicKey::new(alg, key).verify(msg, signature)
            }
        };
        checked.map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// A token signed by `sign` under `alg`, and its claims.
    fn token(alg: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        let claims = b64(br#"{"sub":"alice","exp":4102444800,"aud":"shale","iss":"i"}"#);
        let signed = format!("{header}.{claims}");
        format!("{signed}.{}", b64(&sign(signed.as_bytes())))
    }

    fn validation(alg: Algorithm) -> jsonwebtoken::Validation {
        let mut v = jsonwebtoken::Validation::new(alg);
        v.set_audience(&["shale"]);
        v
    }

    type Claims = serde_json::Map<String, serde_json::Value>;

    #[test]
    fn es256_and_ed25519_tokens_verify_and_a_changed_one_does_not() {
        install();
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let key = DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..])).unwrap();
        let good = token("ES256", |m| pair.sign(&rng, m).unwrap().as_ref().to_vec());
        let data =
            jsonwebtoken::decode::<Claims>(&good, &key, &validation(Algorithm::ES256)).unwrap();
        assert_eq!(data.claims["sub"], "alice");
        let forged = good.replace(".eyJ", ".eyK");
        let e = jsonwebtoken::decode::<Claims>(&forged, &key, &validation(Algorithm::ES256));
        assert!(e.is_err(), "a changed token verified");

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = DecodingKey::from_ed_components(&b64(pair.public_key().as_ref())).unwrap();
        let good = token("EdDSA", |m| pair.sign(m).as_ref().to_vec());
        jsonwebtoken::decode::<Claims>(&good, &key, &validation(Algorithm::EdDSA)).unwrap();
    }

    /// RS256 and PS256 with a JWK's modulus and exponent, as most issuers publish their
    /// keys (ring makes no RSA keys: this one is a fixture).
    #[test]
    fn rsa_tokens_verify_against_a_jwks_modulus_and_exponent() {
        install();
        let pair = sig::RsaKeyPair::from_pkcs8(include_bytes!("testdata/rsa2048.pk8.der")).unwrap();
        let public: sig::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let key = DecodingKey::from_rsa_components(&b64(&public.n), &b64(&public.e)).unwrap();
        let rng = SystemRandom::new();
        for (name, alg, padding) in [
            ("RS256", Algorithm::RS256, &sig::RSA_PKCS1_SHA256 as &dyn sig::RsaEncoding),
            ("PS256", Algorithm::PS256, &sig::RSA_PSS_SHA256),
        ] {
            let good = token(name, |m| {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, m, &mut out).unwrap();
                out
            });
            jsonwebtoken::decode::<Claims>(&good, &key, &validation(alg)).unwrap();
            let forged = good.replace(".eyJ", ".eyK");
            let e = jsonwebtoken::decode::<Claims>(&forged, &key, &validation(alg));
            assert!(e.is_err(), "a changed {name} token verified");
        }
    }

    #[test]
    fn symmetric_algorithms_and_signing_are_refused_by_name() {
        install();
        let key = DecodingKey::from_secret(b"secret");
        let e = verifier(&Algorithm::HS256, &key).err().unwrap();
        assert!(e.to_string().contains("HS256"), "{e}");
        let e = no_signer(&Algorithm::ES256, &EncodingKey::from_secret(b"k")).err().unwrap();
        assert!(e.to_string().contains("does not sign"), "{e}");
    }
}
