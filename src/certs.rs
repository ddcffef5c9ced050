//! `rdask certs new DIR`: a private cluster CA and one certificate per role
//! (scheduler, worker, client), for a quick TLS setup without openssl.
//!
//! Every role certificate is valid both as a TLS server and as a TLS client
//! certificate, because every process is both: workers serve their peer port
//! and connect to the scheduler and other workers; clients connect to the
//! scheduler and gather from workers' peer ports.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The roles a certificate is made for, and their file stems.
pub const ROLES: [&str; 3] = ["scheduler", "worker", "client"];
/// Name of the CA certificate file.
pub const CA_FILE: &str = "ca.pem";
/// Name of the CA private key file: keep it off the cluster's machines.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// How long the generated certificates are valid.
pub const VALIDITY_YEARS: i32 = 10;

/// Errors generating certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// Generating a key or signing a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory already holds certificates; overwriting a CA would lock
    /// out every process that uses the old one.
    #[error("{0} already exists; remove it or choose another directory")]
    Exists(PathBuf),
}

/// What [`new_certs`] wrote.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The CA certificate (`--tls-ca-file` of every process).
    pub ca: PathBuf,
    /// The CA key (only needed to sign more certificates).
    pub ca_key: PathBuf,
    /// Per role: (role, certificate, key).
    pub roles: Vec<(String, PathBuf, PathBuf)>,
}

impl CertFiles {
    /// The certificate and key of `role`.
    pub fn role(&self, role: &str) -> Option<(&Path, &Path)> {
        self.roles
            .iter()
            .find(|(r, _, _)| r == role)
            .map(|(_, c, k)| (c.as_path(), k.as_path()))
    }
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), CertsError> {
    let err = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Keys are readable by their owner only, from the moment they exist.
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = options.open(path).map_err(err)?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(err)
}

fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Average Gregorian year; a day off at a year's edge does not matter here.
    1970 + (secs / 31_556_952) as i32
}

fn params(common_name: &str, hosts: &[String]) -> Result<CertificateParams, CertsError> {
    let mut p = CertificateParams::new(hosts.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rdask");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    let year = this_year();
    p.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + VALIDITY_YEARS, 1, 1);
    Ok(p)
}

/// Creates `dir` (if needed) with a new CA and a certificate and key per
/// role. `hosts` become the certificates' subject alternative names
/// (`localhost` and `127.0.0.1` are always included); rdask does not check
/// them, but other TLS clients (`openssl s_client -verify_hostname`) may.
pub fn new_certs(dir: &Path, hosts: &[String]) -> Result<CertFiles, CertsError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = dir.join(CA_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    for p in [&ca, &ca_key_path] {
        if p.exists() {
            return Err(CertsError::Exists(p.clone()));
        }
    }
    let ca_key = KeyPair::generate()?;
    // A distinct name per CA: verifiers pick a root by name, so two CAs both
    // called "rdask cluster CA" would report a foreign certificate as a bad
    // signature instead of the clearer unknown issuer.
    let ca_name = format!("rdask cluster CA {}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut ca_params = params(&ca_name, &[])?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let mut roles = Vec::new();
    let mut pending = Vec::new();
    for role in ROLES {
        let key = KeyPair::generate()?;
        let mut p = params(&format!("rdask {role}"), &names)?;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer)?;
        let cert_path = dir.join(format!("{role}.pem"));
        let key_path = dir.join(format!("{role}-key.pem"));
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(CertsError::Exists(path.clone()));
            }
        }
        pending.push((cert_path.clone(), cert.pem(), key_path.clone(), key.serialize_pem()));
        roles.push((role.to_string(), cert_path, key_path));
    }
    // Everything is generated before anything is written, so a failure
    // leaves no half-made directory behind (short of a full disk).
    write(&ca, &ca_cert.pem(), false)?;
    write(&ca_key_path, &ca_key.serialize_pem(), true)?;
    for (cert_path, cert, key_path, key) in pending {
        write(&cert_path, &cert, false)?;
        write(&key_path, &key, true)?;
    }
    Ok(CertFiles {
        ca,
        ca_key: ca_key_path,
        roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::security::{Security, TlsFiles};

    #[test]
    fn generated_certs_load_and_are_not_overwritten() {
        let tmp = tempfile::tempdir().expect("temp dir");
        // new_certs creates the directory itself.
        let dir = tmp.path().join("certs");
        let files = new_certs(&dir, &["node1.example".to_string()]).expect("certs");
        for role in ROLES {
            let (cert, key) = files.role(role).expect("role");
            let sec = Security::tls(&TlsFiles {
                ca_file: files.ca.clone(),
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
            .expect("loads");
            assert!(sec.is_tls());
        }
        assert!(matches!(new_certs(&dir, &[]), Err(CertsError::Exists(_))));
    }
}
