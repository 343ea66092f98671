//! Mutual TLS between the platform's gRPC services.
//!
//! A service that is given `POS_TLS_CERT`, `POS_TLS_KEY` and `POS_TLS_CA` (all three or none)
//! serves gRPC only to callers that present a certificate signed by that CA, and its clients of
//! other services present the same certificate and verify the server against the same CA. With
//! none of them set, servers and clients speak plaintext h2, as on loopback for local runs and
//! tests. One TLS stack: tonic's rustls with the ring provider.
//!
//! A server does
//! `let builder = match &tls { Some(t) => Server::builder().tls_config(server_tls(t)?)?, None => Server::builder() };`
//! and a client takes its channel from [`endpoint`], which refuses to mix `https://` URLs and
//! missing settings (or `http://` URLs and present ones).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig, Uri};

/// Environment variable of the certificate chain (PEM).
pub const CERT_ENV: &str = "POS_TLS_CERT";
/// Environment variable of the private key (PEM).
pub const KEY_ENV: &str = "POS_TLS_KEY";
/// Environment variable of the CA certificate(s) (PEM) that sign every service's certificate.
pub const CA_ENV: &str = "POS_TLS_CA";

/// What went wrong with the TLS settings or files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some of the three settings are set and some are not.
    #[error("mutual TLS needs all of POS_TLS_CERT, POS_TLS_KEY and POS_TLS_CA or none; missing: {}", .0.join(", "))]
    Partial(Vec<&'static str>),
    /// A file could not be read.
    #[error("{setting}: cannot read {}: {source}", .path.display())]
    Read {
        /// Which setting named the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what the setting needs.
    #[error("{setting}: {} is not valid PEM: {reason}", .path.display())]
    Pem {
        /// Which setting named the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A service URL does not fit the TLS settings.
    #[error("{url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// tonic refused the configuration.
    #[error("tls: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The three optional settings as a service's command line reads them (flatten it into the
/// service's clap config); [`TlsArgs::config`] turns them into a checked [`TlsConfig`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Mutual TLS: this service's certificate chain (PEM). With POS_TLS_KEY and POS_TLS_CA,
    /// gRPC is served and called over TLS with client certificates; without, plaintext.
    #[arg(long = "tls-cert", env = CERT_ENV)]
    pub cert: Option<PathBuf>,
    /// Mutual TLS: the private key (PEM, PKCS#8, PKCS#1 or SEC1) of POS_TLS_CERT.
    #[arg(long = "tls-key", env = KEY_ENV)]
    pub key: Option<PathBuf>,
    /// Mutual TLS: the CA certificate(s) (PEM) that must sign every caller's and every called
    /// service's certificate.
    #[arg(long = "tls-ca", env = CA_ENV)]
    pub ca: Option<PathBuf>,
}

impl TlsArgs {
    /// `None` when none of the settings is set; the checked config when all three are; an
    /// error when only some are, or a file is unreadable or not PEM of the right kind.
    pub fn config(&self) -> Result<Option<TlsConfig>> {
        match (&self.cert, &self.key, &self.ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => {
                TlsConfig::new(cert.clone(), key.clone(), ca.clone()).map(Some)
            }
            (cert, key, ca) => {
                let missing = [(cert, CERT_ENV), (key, KEY_ENV), (ca, CA_ENV)]
                    .into_iter()
                    .filter(|(value, _)| value.is_none())
                    .map(|(_, name)| name)
                    .collect();
                Err(Error::Partial(missing))
            }
        }
    }
}

/// Where this service's certificate, key and the CA are; the files were checked when it was
/// made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf (PEM).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) trusted for peers.
    pub ca: PathBuf,
}

impl TlsConfig {
    /// Checks that the three files are readable and hold the right PEM.
    pub fn new(cert: PathBuf, key: PathBuf, ca: PathBuf) -> Result<Self> {
        let config = Self { cert, key, ca };
        config.load()?;
        Ok(config)
    }

    /// The files' contents, checked: (identity, CA).
    fn load(&self) -> Result<(Identity, Certificate)> {
        let cert = read(CERT_ENV, &self.cert)?;
        certificates(CERT_ENV, &self.cert, &cert)?;
        let key = read(KEY_ENV, &self.key)?;
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| Error::Pem {
            setting: KEY_ENV,
            path: self.key.clone(),
            reason: format!("no private key: {e}"),
        })?;
        let ca = read(CA_ENV, &self.ca)?;
        certificates(CA_ENV, &self.ca, &ca)?;
        Ok((Identity::from_pem(cert, key), Certificate::from_pem(ca)))
    }
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

/// At least one certificate, every one of them well-formed PEM.
fn certificates(setting: &'static str, path: &Path, pem: &[u8]) -> Result<()> {
    let invalid = |reason: String| Error::Pem {
        setting,
        path: path.to_owned(),
        reason,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| invalid(e.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid("no CERTIFICATE block".to_owned()));
    }
    Ok(())
}

/// The server side: this service's identity, and a client certificate signed by the CA
/// required of every caller.
pub fn server_tls(config: &TlsConfig) -> Result<ServerTlsConfig> {
    let (identity, ca) = config.load()?;
    Ok(ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(ca)
        .client_auth_optional(false))
}

/// The server side of an edge listener (the terminal gateway): TLS with this service's
/// identity, a client certificate optional. Its callers are terminals, which authenticate with
/// their MACs, and operators, with bearer tokens; services that present a certificate are
/// verified against the CA.
pub fn edge_server_tls(config: &TlsConfig) -> Result<ServerTlsConfig> {
    Ok(server_tls(config)?.client_auth_optional(true))
}

/// An endpoint for a terminal or operator tool: `https://` verified against the CA in
/// `ca_file` (no client certificate), or plain `http://` when no CA is given.
pub fn tool_endpoint(url: &str, ca_file: Option<&Path>) -> Result<Endpoint> {
    let bad = |reason: &str| Error::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let endpoint = Endpoint::from(uri.clone());
    match (uri.scheme_str(), ca_file) {
        (Some("http"), None) => Ok(endpoint),
        (Some("https"), Some(ca_file)) => {
            let pem = std::fs::read(ca_file).map_err(|_| bad("the CA file cannot be read"))?;
            let host = uri.host().ok_or_else(|| bad("no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok(endpoint.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(pem))
                    .domain_name(host),
            )?)
        }
        (Some("https"), None) => Err(bad(
            "https:// needs the CA that signed the host's certificate",
        )),
        (Some("http"), Some(_)) => Err(bad("a CA is given: use an https:// URL")),
        _ => Err(bad("the scheme must be http or https")),
    }
}

/// The client side: verifies the server's certificate against the CA for `domain` (a DNS name
/// or an IP address) and presents this service's identity.
pub fn client_tls(config: &TlsConfig, domain: &str) -> Result<ClientTlsConfig> {
    let (identity, ca) = config.load()?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(identity)
        .domain_name(domain))
}

/// An endpoint for `url`: with TLS configured the URL must be `https://` and the server is
/// verified under the URL's host; without, it must be `http://`.
pub fn endpoint(url: &str, tls: Option<&TlsConfig>) -> Result<Endpoint> {
    let bad = |reason: &str| Error::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let endpoint = Endpoint::from(uri.clone());
    match (uri.scheme_str(), tls) {
        (Some("https"), Some(tls)) => {
            let host = uri.host().ok_or_else(|| bad("no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok(endpoint.tls_config(client_tls(tls, host)?)?)
        }
        (Some("http"), None) => Ok(endpoint),
        (Some("https"), None) => Err(bad(
            "https:// needs POS_TLS_CERT, POS_TLS_KEY and POS_TLS_CA (mutual TLS)",
        )),
        (Some("http"), Some(_)) => Err(bad(
            "mutual TLS is configured (POS_TLS_*): use an https:// URL",
        )),
        _ => Err(bad("the scheme must be http or https")),
    }
}

/// Checks that `url` fits the TLS settings without building anything that needs a runtime.
pub fn check_url(url: &str, tls: Option<&TlsConfig>) -> Result<()> {
    endpoint(url, tls).map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join("pos-tls-tests")
            .join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn args(cert: Option<&Path>, key: Option<&Path>, ca: Option<&Path>) -> TlsArgs {
        TlsArgs {
            cert: cert.map(Path::to_owned),
            key: key.map(Path::to_owned),
            ca: ca.map(Path::to_owned),
        }
    }

    /// Writes well-formed (if meaningless) PEM files: cert, key, CA.
    fn files(name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = dir(name);
        let (cert, key, ca) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("ca.pem"));
        std::fs::write(&cert, CERT).unwrap();
        std::fs::write(&key, KEY).unwrap();
        std::fs::write(&ca, CERT).unwrap();
        (cert, key, ca)
    }

    #[test]
    fn none_set_means_plaintext() {
        assert_eq!(TlsArgs::default().config().unwrap(), None);
    }

    #[test]
    fn some_set_is_refused_naming_the_missing_ones() {
        let (cert, _, ca) = files("partial");
        let error = args(Some(&cert), None, Some(&ca)).config().unwrap_err();
        assert!(matches!(&error, Error::Partial(missing) if missing == &[KEY_ENV]));
        assert!(error.to_string().contains("POS_TLS_KEY"));
        let error = args(None, None, Some(&ca))
            .config()
            .unwrap_err()
            .to_string();
        assert!(error.contains("POS_TLS_CERT, POS_TLS_KEY"), "{error}");
    }

    #[test]
    fn all_set_with_pem_files_is_accepted() {
        let (cert, key, ca) = files("complete");
        let config = args(Some(&cert), Some(&key), Some(&ca)).config().unwrap();
        assert_eq!(config.unwrap().ca, ca);
    }

    #[test]
    fn unreadable_files_are_refused_naming_the_setting() {
        let (cert, key, _) = files("unreadable");
        let missing = dir("unreadable").join("no-such-ca.pem");
        let error = args(Some(&cert), Some(&key), Some(&missing))
            .config()
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Read {
                    setting: CA_ENV,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("no-such-ca.pem"));
    }

    #[test]
    fn files_without_the_right_pem_are_refused() {
        let (cert, key, ca) = files("invalid");
        let garbage = dir("invalid").join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let error = args(Some(&garbage), Some(&key), Some(&ca))
            .config()
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Pem {
                    setting: CERT_ENV,
                    ..
                }
            ),
            "{error}"
        );
        // A certificate where the key should be.
        let error = args(Some(&cert), Some(&cert), Some(&ca))
            .config()
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Pem {
                    setting: KEY_ENV,
                    ..
                }
            ),
            "{error}"
        );
        let error = args(Some(&cert), Some(&key), Some(&key))
            .config()
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Pem {
                    setting: CA_ENV,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn urls_must_match_the_settings() {
        let (cert, key, ca) = files("urls");
        let tls = TlsConfig::new(cert, key, ca).unwrap();
        check_url("http://127.0.0.1:7010", None).unwrap();
        let error = check_url("https://127.0.0.1:7010", None).unwrap_err();
        assert!(error.to_string().contains("POS_TLS_CERT"), "{error}");
        let error = check_url("http://127.0.0.1:7010", Some(&tls)).unwrap_err();
        assert!(error.to_string().contains("https://"), "{error}");
        assert!(check_url("ftp://x", None).is_err());
        assert!(check_url("not a url", None).is_err());
    }
}
