//! TLS for natterd: a certificate and key from PEM files (`--tls-cert`, `--tls-key`), or
//! a self-signed certificate generated at start for a test setup (`--tls-self-signed`),
//! whose SHA-256 fingerprint clients can pin.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// A ready TLS setup.
pub struct Tls {
    pub config: RustlsConfig,
    /// SHA-256 of the certificate (DER), as `AB:CD:...`.
    pub fingerprint: String,
    /// Where the self-signed certificate was written, for clients' `--ca-cert`.
    pub generated_cert: Option<PathBuf>,
}

/// `AB:CD:...` of the SHA-256 of a DER certificate: the form `natter --pin` takes.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Sets up TLS when the configuration asks for it.
pub async fn load(config: &Config, data_dir: &Path) -> anyhow::Result<Option<Tls>> {
    match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
        (None, None, false) => Ok(None),
        (Some(cert), Some(key), false) => {
            let first = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("cannot read certificate {}", cert.display()))?
                .next()
                .with_context(|| format!("no certificate in {}", cert.display()))?
                .with_context(|| format!("bad certificate in {}", cert.display()))?;
            let rustls = RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| format!("cannot use {} and {}", cert.display(), key.display()))?;
            Ok(Some(Tls {
                config: rustls,
                fingerprint: fingerprint(&first),
                generated_cert: None,
            }))
        }
        (None, None, true) => self_signed(config.listen, data_dir).await.map(Some),
        (Some(_), None, _) | (None, Some(_), _) => {
            anyhow::bail!("--tls-cert and --tls-key go together: give both")
        }
        (_, _, true) => {
            anyhow::bail!("--tls-self-signed cannot be combined with --tls-cert/--tls-key")
        }
    }
}

async fn self_signed(listen: SocketAddr, data_dir: &Path) -> anyhow::Result<Tls> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.dedup();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).context("cannot generate a certificate")?;
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("self-signed.crt");
    std::fs::write(&path, cert.pem())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let rustls = RustlsConfig::from_pem(
        cert.pem().into_bytes(),
        signing_key.serialize_pem().into_bytes(),
    )
    .await
    .context("cannot use the generated certificate")?;
    Ok(Tls {
        config: rustls,
        fingerprint: fingerprint(cert.der()),
        generated_cert: Some(path),
    })
}
