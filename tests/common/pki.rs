//! Test certificate authorities and certificates (rcgen), written as PEM files: a CA, and
//! leaf certificates it signs for brokers (server and client use, valid for `127.0.0.1` and
//! `localhost`) and for clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A certificate authority.
pub(crate) struct Ca {
    cert: Certificate,
    key: KeyPair,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A PEM certificate and its key, on disk.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub(crate) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        Ca { cert, key, pem }
    }

    /// Writes the CA certificate to `path`.
    pub(crate) fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).unwrap();
        path.to_path_buf()
    }

    /// A leaf certificate for `cn`, valid for loopback, usable by a server and a client,
    /// carrying `uri` as a URI SAN (a SPIFFE ID) if given.
    pub(crate) fn leaf(&self, cn: &str, uri: Option<&str>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        if let Some(uri) = uri {
            params.subject_alt_names.push(rcgen::SanType::URI(uri.try_into().unwrap()));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf certificate for `cn` that also carries `uri` as a URI SAN, written like
    /// [`Ca::write_leaf`].
    pub(crate) fn write_leaf_with_uri(&self, dir: &Path, name: &str, cn: &str, uri: &str) -> Files {
        self.write_pair(dir, name, self.leaf(cn, Some(uri)))
    }

    /// The same, written to `{dir}/{name}.crt` and `{dir}/{name}.key` (replacing what is
    /// there: a rotation).
    pub(crate) fn write_leaf(&self, dir: &Path, name: &str, cn: &str) -> Files {
        self.write_pair(dir, name, self.leaf(cn, None))
    }

    fn write_pair(&self, dir: &Path, name: &str, (cert, key): (String, String)) -> Files {
        let files =
            Files { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        // Key first, then certificate, each by rename, as a secret volume update would.
        for (path, body) in [(&files.key, key), (&files.cert, cert)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        files
    }
}

/// Settings of a broker under `dir` (data in `dir/data`) that serves TLS with a certificate
/// of a new CA (clients' certificates optional: brokers authenticate to each other with
/// theirs) and requires authentication: bearer tokens from `tokens` (`Type:name token`
/// lines), `User:admin` a super user. The CA bundle's path with them.
pub(crate) fn secure_settings(dir: &Path, tokens: &str) -> (shale::settings::Settings, PathBuf) {
    let ca = Ca::new("test CA");
    let ca_file = ca.write(&dir.join("ca.crt"));
    let server_files = ca.write_leaf(dir, "broker", "broker");
    let token_file = dir.join("tokens");
    std::fs::write(&token_file, tokens).unwrap();
    let mut settings = crate::common::settings(&dir.join("data"));
    settings.tls.cert_file = Some(server_files.cert);
    settings.tls.key_file = Some(server_files.key);
    settings.tls.ca_file = Some(ca_file.clone());
    settings.tls.client_auth = shale::tls::ClientAuth::Optional;
    settings.auth.require = true;
    settings.auth.token_file = Some(token_file);
    settings.acl.super_users = vec!["User:admin".into()];
    (settings, ca_file)
}
