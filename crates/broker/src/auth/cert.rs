//! Principals from client certificates: ordered rules, each naming a field of the leaf
//! certificate (a URI SAN such as a SPIFFE ID, a DNS SAN, the subject's common name or the
//! whole subject), a regular expression that must match all of it, and a principal
//! template that may use the expression's groups (`$1`, `${name}`). The first rule whose
//! expression matches wins; without one, `User:` and the subject's common name.

use regex::Regex;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{Principal, unauthenticated};
use shale_core::error::Error;

/// The part of a certificate a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertField {
    /// Each URI subject alternative name (SPIFFE IDs: `spiffe://trust-domain/path`).
    SanUri,
    /// Each DNS subject alternative name.
    SanDns,
    /// The subject's common name.
    SubjectCn,
    /// The whole subject, RFC 4514 style (`CN=alice, O=example`).
    Subject,
}

/// `[[auth.tls_rules]]`: if `field` matches `pattern`, the principal is `principal` with
/// the pattern's groups filled in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsRule {
    /// The certificate field.
    pub field: CertField,
    /// A regular expression matched against the whole field.
    pub pattern: String,
    /// The principal, e.g. `User:$1`.
    pub principal: String,
}

/// A rule ready to use.
#[derive(Debug)]
pub(super) struct Compiled {
    field: CertField,
    pattern: Regex,
    principal: String,
}

impl TlsRule {
    pub(super) fn compile(&self) -> Result<Compiled, Error> {
        let pattern = Regex::new(&format!("^(?:{})$", self.pattern)).map_err(|e| {
            Error::invalid(format!("pattern {:?} is not a regular expression: {e}", self.pattern))
        })?;
        if !self.principal.contains(':') {
            return Err(Error::invalid(format!(
                "principal template {:?} needs a type, e.g. User:$1",
                self.principal
            )));
        }
        Ok(Compiled { field: self.field, pattern, principal: self.principal.clone() })
    }
}

/// The values of `field` in `cert`.
fn values(cert: &X509Certificate<'_>, field: CertField) -> Vec<String> {
    let sans = || -> Vec<GeneralName<'_>> {
        cert.subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.clone())
            .unwrap_or_default()
    };
    match field {
        CertField::SanUri => sans()
            .into_iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
            .collect(),
        CertField::SanDns => sans()
            .into_iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        CertField::SubjectCn => cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect(),
        CertField::Subject => vec![cert.subject().to_string()],
    }
}

/// The principal of the leaf certificate `der` (already verified by the TLS handshake).
pub(super) fn principal(der: &[u8], rules: &[Compiled]) -> Result<Principal, Error> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| unauthenticated(format!("the client certificate does not parse: {e}")))?;
    for rule in rules {
        for value in values(&cert, rule.field) {
            if let Some(caps) = rule.pattern.captures(&value) {
                let mut out = String::new();
                caps.expand(&rule.principal, &mut out);
                return Principal::parse(&out).map_err(|e| {
                    unauthenticated(format!(
                        "the certificate maps to a bad principal: {}",
                        e.message
                    ))
                });
            }
        }
    }
    match values(&cert, CertField::SubjectCn).into_iter().next() {
        Some(cn) if !cn.is_empty() => Ok(Principal::user(cn)),
        _ => Err(unauthenticated(
            "the client certificate has no common name and no mapping rule matches it",
        )),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    use super::*;

    fn cert(cn: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen names a certificate by default; these tests decide the subject.
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = sans;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn rules(list: &[(CertField, &str, &str)]) -> Vec<Compiled> {
        list.iter()
            .map(|(field, pattern, principal)| {
                TlsRule {
                    field: *field,
                    pattern: pattern.to_string(),
                    principal: principal.to_string(),
                }
                .compile()
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_first_matching_rule_names_the_principal_else_the_common_name() {
        let spiffe = SanType::URI("spiffe://example.org/ns/payments/sa/ingest".try_into().unwrap());
        let der = cert(Some("ingest-7f9c"), vec![spiffe]);
        let r = rules(&[
            (CertField::SanDns, r"(.*)\.brokers\.internal", "User:broker"),
            (CertField::SanUri, r"spiffe://example\.org/ns/([^/]+)/sa/([^/]+)", "User:$1.$2"),
            (CertField::SubjectCn, r"(.*)", "User:cn-$1"),
        ]);
        assert_eq!(principal(&der, &r).unwrap(), Principal::user("payments.ingest"));
        // Without rules: the common name.
        assert_eq!(principal(&der, &[]).unwrap(), Principal::user("ingest-7f9c"));
        // A DNS SAN rule.
        let dns = SanType::DnsName("b1.brokers.internal".try_into().unwrap());
        assert_eq!(principal(&cert(None, vec![dns]), &r).unwrap(), Principal::user("broker"));
        // Patterns match the whole field, not a part of it.
        let r = rules(&[(CertField::SubjectCn, "alice", "User:matched")]);
        assert_eq!(
            principal(&cert(Some("malice"), vec![]), &r).unwrap(),
            Principal::user("malice")
        );
        // Nothing to name the caller by.
        let e = principal(&cert(None, vec![]), &[]).unwrap_err();
        assert_eq!(e.kind, shale_core::error::ErrorKind::Unauthenticated);
    }

    #[test]
    fn bad_rules_are_named() {
        let bad =
            TlsRule { field: CertField::SanUri, pattern: "(".into(), principal: "User:$1".into() };
        assert!(bad.compile().unwrap_err().message.contains("is not a regular expression"));
        let bad =
            TlsRule { field: CertField::SanUri, pattern: ".*".into(), principal: "alice".into() };
        assert!(bad.compile().unwrap_err().message.contains("needs a type"));
    }
}
