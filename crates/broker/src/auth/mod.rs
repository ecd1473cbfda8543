//! Who is calling: every request is given a [`Principal`] before any service sees it, by
//! each front end (the gRPC services' tower layer, the Kafka listener's handshake) through
//! the broker's `api`.
//!
//! - A bearer token (`authorization: Bearer …`) names its principal through the static
//!   token file (`auth.token_file`) or, if it is a JWT, through its claims once verified
//!   against the OpenID Connect issuer's keys (`[auth.jwt]`, see `jwt`). A token that names nobody is refused with
//!   `UNAUTHENTICATED`, whatever `auth.require` says: a wrong credential is never treated as
//!   no credential.
//! - Otherwise a client certificate (mTLS) names it through the ordered mapping rules
//!   (`[[auth.tls_rules]]`: a field of the certificate, a regular expression, a template);
//!   without a matching rule, `User:` and the certificate's subject common name.
//! - Otherwise the caller is `User:ANONYMOUS`, refused with `UNAUTHENTICATED` when
//!   `auth.require` is set (health checks stay open for probes).
//!
//! Brokers authenticate to each other with their TLS certificates; `auth.broker_principals`
//! names the principals that are brokers.
//!
//! `scram`: users' password credentials (SASL/SCRAM and SASL/PLAIN on the Kafka listener).

mod cert;
mod jwt;
mod jwt_ring;
pub mod scram;
mod tokens;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};

pub use cert::{CertField, TlsRule};
pub use jwt::JwtSettings;

/// An authenticated identity: a type and a name, written `Type:name` (Kafka's form).
/// Kept as that text, so the checks on every request (ACLs, quotas) compare and look it up
/// without building it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    text: String,
    colon: usize,
}

impl Principal {
    /// `User:{name}`.
    pub fn user(name: impl Into<String>) -> Principal {
        Principal { text: format!("User:{}", name.into()), colon: 4 }
    }

    /// The principal of a caller that presented no credential.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    /// Whether this is the anonymous principal.
    pub fn is_anonymous(&self) -> bool {
        *self == Principal::anonymous()
    }

    /// Parses `Type:name`; both parts non-empty, no control characters.
    pub fn parse(s: &str) -> Result<Principal, Error> {
        let bad = || {
            Error::invalid(format!(
                "principal {s:?} is invalid: expected Type:name, e.g. User:alice"
            ))
        };
        let colon = s.find(':').ok_or_else(bad)?;
        if colon == 0 || colon + 1 == s.len() || s.chars().any(char::is_control) {
            return Err(bad());
        }
        Ok(Principal { text: s.to_string(), colon })
    }

    /// The type (`User`).
    pub fn kind(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// `Type:name`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How a caller's principal was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A bearer token.
    Token,
    /// A client certificate (mTLS).
    Certificate,
    /// A user name and password (SASL/SCRAM or SASL/PLAIN).
    Password,
    /// No credential: the anonymous principal.
    None,
}

impl Via {
    /// `token`, `certificate` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Certificate => "certificate",
            Via::Password => "password",
            Via::None => "none",
        }
    }
}

/// Who a request comes from, as the auth layer established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The principal.
    pub principal: Principal,
    /// From what.
    pub via: Via,
    /// Whether the principal is one of the brokers.
    pub broker: bool,
}

impl Identity {
    /// The identity of a caller without credentials.
    pub fn anonymous() -> Identity {
        Identity { principal: Principal::anonymous(), via: Via::None, broker: false }
    }
}

/// `[auth]`: how callers are authenticated.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Refuse requests that carry no credential (`UNAUTHENTICATED`), except health checks.
    pub require: bool,
    /// Static bearer tokens: one `Type:name token` pair per line, `#` comments.
    pub token_file: Option<PathBuf>,
    /// Rules mapping a client certificate to a principal, tried in order.
    pub tls_rules: Vec<TlsRule>,
    /// Principals that are brokers (e.g. `User:broker`, as their certificates map).
    pub broker_principals: Vec<String>,
    /// `[auth.jwt]`: JWT bearer tokens from an OpenID Connect issuer.
    pub jwt: Option<JwtSettings>,
}

impl AuthSettings {
    /// Checks every value, naming the bad one.
    pub fn validate(&self, tls: &crate::tls::TlsSettings) -> Result<(), Error> {
        for p in &self.broker_principals {
            Principal::parse(p)
                .map_err(|e| Error::invalid(format!("auth.broker_principals: {}", e.message)))?;
        }
        for (i, rule) in self.tls_rules.iter().enumerate() {
            rule.compile()
                .map_err(|e| Error::invalid(format!("auth.tls_rules[{i}]: {}", e.message)))?;
        }
        if let Some(jwt) = &self.jwt {
            jwt.validate()?;
        }
        if self.require && tls.client_auth == crate::tls::ClientAuth::None {
            return Err(Error::invalid(
                "auth.require needs tls.client_auth = \"optional\" or \"required\": brokers \
                 authenticate to each other with their certificates",
            ));
        }
        Ok(())
    }
}

/// Turns credentials into principals.
#[derive(Debug)]
pub struct Authenticator {
    require: bool,
    tokens: tokens::Tokens,
    jwt: Option<jwt::JwtVerifier>,
    rules: Vec<cert::Compiled>,
    brokers: HashSet<Principal>,
}

/// `UNAUTHENTICATED` with `why`.
pub fn unauthenticated(why: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unauthenticated, Reason::Unauthenticated, why)
}

impl Authenticator {
    /// Reads the token file, compiles the rules and reads the JWT signing keys; an error
    /// names the file, rule or URL.
    pub async fn new(
        settings: &AuthSettings,
        clock: shale_core::clock::SharedClock,
    ) -> Result<Arc<Authenticator>, Error> {
        let tokens = match &settings.token_file {
            Some(path) => tokens::Tokens::read(path)?,
            None => tokens::Tokens::default(),
        };
        let rules = settings
            .tls_rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.compile()
                    .map_err(|e| Error::invalid(format!("auth.tls_rules[{i}]: {}", e.message)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let brokers = settings
            .broker_principals
            .iter()
            .map(|p| Principal::parse(p))
            .collect::<Result<HashSet<_>, _>>()?;
        let jwt = match &settings.jwt {
            Some(s) => Some(jwt::JwtVerifier::new(s, clock).await?),
            None => None,
        };
        Ok(Arc::new(Authenticator { require: settings.require, tokens, jwt, rules, brokers }))
    }

    /// The principal of a request: from its bearer token if it has one, else from its
    /// client certificate (leaf first), else anonymous (refused under `require`).
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        certificate: Option<&[u8]>,
    ) -> Result<Identity, Error> {
        let (principal, via) = if let Some(token) = bearer {
            let p = match (&self.jwt, self.tokens.principal(token)) {
                (_, Some(p)) => p,
                // A JWT: three dot-separated parts.
                (Some(jwt), None) if token.matches('.').count() == 2 => jwt.verify(token).await?,
                _ => {
                    return Err(unauthenticated(
                        "the bearer token is not valid here (unknown or revoked)",
                    ));
                }
            };
            (p, Via::Token)
        } else if let Some(der) = certificate {
            (cert::principal(der, &self.rules)?, Via::Certificate)
        } else if self.require {
            return Err(unauthenticated(
                "this broker requires authentication: present a client certificate or a \
                 bearer token",
            ));
        } else {
            return Ok(Identity::anonymous());
        };
        let broker = self.is_broker(&principal);
        Ok(Identity { principal, via, broker })
    }

    /// Whether `p` is one of the brokers.
    pub fn is_broker(&self, p: &Principal) -> bool {
        self.brokers.contains(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_as_type_and_name_and_read_back_as_written() {
        let p = Principal::parse("Group:ops:eu").unwrap();
        assert_eq!((p.kind(), p.name(), p.as_str()), ("Group", "ops:eu", "Group:ops:eu"));
        assert_eq!(Principal::user("alice"), Principal::parse("User:alice").unwrap());
        assert_eq!(Principal::anonymous().to_string(), "User:ANONYMOUS");
        for bad in ["alice", ":alice", "User:", "User:a\nb"] {
            let e = Principal::parse(bad).unwrap_err();
            assert!(e.message.contains("is invalid"), "{bad:?}: {}", e.message);
        }
    }
}
