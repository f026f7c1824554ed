//! Which TLS certificates the client trusts, for HTTPS and WSS alike.
//!
//! By default the platform's roots (rustls-platform-verifier). A self-hosted server with
//! its own CA is trusted with `--ca-cert FILE` (`NATTER_CA_CERT`), and one with a
//! self-signed certificate by pinning its SHA-256 fingerprint with `--pin`
//! (`NATTER_PIN`), as `natterd --tls-self-signed` prints it. There is no "accept any
//! certificate" mode.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::Error;

/// What to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The platform's certificate roots.
    Platform,
    /// Only certificates issued by the CA(s) in this PEM file.
    CaFile(PathBuf),
    /// Only a server whose certificate has this SHA-256 fingerprint (32 bytes).
    Pin([u8; 32]),
}

static TRUST: OnceLock<Trust> = OnceLock::new();
static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();

/// Parses a fingerprint as `natterd` prints it (`AB:CD:...`), or as plain hex, with or
/// without a `sha256:` prefix.
pub fn parse_pin(s: &str) -> Result<[u8; 32], Error> {
    let s = s.trim();
    let s = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .unwrap_or(s);
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bad = || {
        Error::Protocol(format!(
            "--pin wants a SHA-256 fingerprint (64 hex digits, colons allowed), not {s:?}"
        ))
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Sets what the process trusts; call once at start, before any connection.
pub fn set_trust(trust: Trust) {
    let _ = TRUST.set(trust);
}

/// The rustls configuration every HTTPS and WSS connection of this process uses.
pub fn client_config() -> Result<Arc<ClientConfig>, Error> {
    CONFIG
        .get_or_init(|| build(TRUST.get().unwrap_or(&Trust::Platform)).map(Arc::new))
        .clone()
        .map_err(Error::Protocol)
}

fn provider() -> Arc<CryptoProvider> {
    crate::init_crypto();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

fn build(trust: &Trust) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    Ok(match trust {
        Trust::Platform => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| format!("cannot load the platform's certificate roots: {e}"))?
                .with_no_client_auth()
        }
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read --ca-cert {}: {e}", path.display()))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("unusable certificate in {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("no certificate in --ca-cert {}", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    })
}

/// Accepts exactly the certificate with the pinned fingerprint (and still checks that
/// the server holds its key: handshake signatures are verified).
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate fingerprint is {}, not the pinned one",
                fingerprint_hex(&got)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `AB:CD:...`
pub fn fingerprint_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_in_every_spelling() {
        let colon = "5C:1D:B4:0A:1F:69:B3:45:92:A1:34:41:A3:E1:74:27:40:A2:BB:A2:7B:77:B6:85:1B:E7:67:C4:25:02:EF:67";
        let a = parse_pin(colon).unwrap();
        let plain = colon.replace(':', "").to_lowercase();
        assert_eq!(parse_pin(&plain).unwrap(), a);
        assert_eq!(parse_pin(&format!("sha256:{plain}")).unwrap(), a);
        assert_eq!(fingerprint_hex(&a), colon);
        assert!(parse_pin("AB:CD").is_err());
        assert!(parse_pin(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn every_trust_mode_builds() {
        assert!(build(&Trust::Pin([7; 32])).is_ok());
        assert!(build(&Trust::Platform).is_ok());
        let e = build(&Trust::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(e.contains("cannot read --ca-cert"), "{e}");
    }
}
