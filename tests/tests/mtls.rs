//! Mutual TLS against the real `issuer-sim` binary: with `POS_TLS_*` set it answers only
//! callers whose certificate is signed by the configured CA, and proves its own identity.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::Duration;

use pos_proto::v1::issuer_client::IssuerClient;
use pos_proto::v1::{IssuerReverseRequest, IssuerReverseResponse, Money};
use pos_testkit::{ServiceProcess, TestEnv, free_port};
use pos_tls::TlsConfig;
use rcgen::{
    BasicConstraints, Certificate as CaCertificate, CertificateParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A certificate authority of the test.
struct Ca {
    cert: CaCertificate,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A leaf certificate and its key (PEM) for `names`, for servers or for clients.
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "pos test service");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `cert`, `key` and the CA to `dir` under `name`; returns the checked config.
fn write_config(dir: &Path, name: &str, (cert, key): &(String, String), ca: &str) -> TlsConfig {
    let path = |file: &str| -> PathBuf { dir.join(format!("{name}-{file}.pem")) };
    std::fs::write(path("cert"), cert).unwrap();
    std::fs::write(path("key"), key).unwrap();
    std::fs::write(path("ca"), ca).unwrap();
    TlsConfig::new(path("cert"), path("key"), path("ca")).unwrap()
}

fn unknown_reversal() -> IssuerReverseRequest {
    IssuerReverseRequest {
        acquirer_reversal_id: uuid::Uuid::now_v7().to_string(),
        original_acquirer_transaction_id: uuid::Uuid::now_v7().to_string(),
        amount: Some(Money {
            minor_units: 5_000,
            currency: "CNY".to_owned(),
        }),
        reason_code: "98".to_owned(),
        ..Default::default()
    }
}

/// Connects with `endpoint` and asks for a reversal, all within a few seconds.
async fn reverse(endpoint: Endpoint) -> Result<IssuerReverseResponse, String> {
    let call = async {
        let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
        IssuerClient::new(channel)
            .reverse(unknown_reversal())
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| format!("{e:?}"))
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| Err("no answer within 10 s".to_owned()))
}

#[tokio::test]
async fn issuer_serves_only_clients_with_a_certificate_of_the_ca() {
    let env = TestEnv::new();
    let dir = std::env::temp_dir().join("pos-tests").join(&env.namespace);
    std::fs::create_dir_all(&dir).unwrap();

    let ca = Ca::new("pos test CA");
    let server = ca.leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = ca.leaf(&["authorization"], ExtendedKeyUsagePurpose::ClientAuth);
    let server_tls = write_config(&dir, "issuer", &server, &ca.pem);
    let client_tls = write_config(&dir, "client", &client, &ca.pem);

    let port = free_port();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo/cards.json");
    let envs = [
        ("POS_ISSUER_LISTEN", format!("127.0.0.1:{port}")),
        ("POS_ISSUER_METRICS", format!("127.0.0.1:{}", free_port())),
        ("POS_REDIS", env.redis.clone()),
        (
            "POS_ISSUER_REDIS_PREFIX",
            format!("{}-issuer", env.namespace),
        ),
        ("POS_ISSUER_SEED", seed.display().to_string()),
        ("POS_TLS_CERT", server_tls.cert.display().to_string()),
        ("POS_TLS_KEY", server_tls.key.display().to_string()),
        ("POS_TLS_CA", server_tls.ca.display().to_string()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let mut issuer = ServiceProcess::start("issuer-sim", &envs, &dir);
    issuer.wait_for_port(port);
    let url = format!("https://127.0.0.1:{port}");

    // (1) The CA's client certificate: served, and an unknown original is reversed ("00").
    let endpoint = pos_tls::endpoint(&url, Some(&client_tls)).unwrap();
    let answer = reverse(endpoint).await.unwrap_or_else(|e| {
        panic!(
            "mutual TLS call failed: {e}\nissuer log:\n{}",
            issuer.log_text()
        )
    });
    assert_eq!(answer.response_code, "00", "{answer:?}");
    // The server is verified under its DNS name too.
    let by_name = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(pos_tls::client_tls(&client_tls, "localhost").unwrap())
        .unwrap();
    assert_eq!(reverse(by_name).await.unwrap().response_code, "00");

    // (2) Plaintext h2 is refused.
    let plaintext = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    let refused = reverse(plaintext).await;
    assert!(refused.is_err(), "plaintext call answered: {refused:?}");

    // (3) TLS without a client certificate is refused.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    let refused = reverse(
        Endpoint::from_shared(url.clone())
            .unwrap()
            .tls_config(anonymous)
            .unwrap(),
    )
    .await;
    assert!(
        refused.is_err(),
        "call without a client certificate answered: {refused:?}"
    );

    // (4) A client certificate of another CA is refused.
    let other_ca = Ca::new("another CA");
    let (cert, key) = other_ca.leaf(&["intruder"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .identity(Identity::from_pem(cert, key))
        .domain_name("localhost");
    let refused = reverse(
        Endpoint::from_shared(url.clone())
            .unwrap()
            .tls_config(stranger)
            .unwrap(),
    )
    .await;
    assert!(
        refused.is_err(),
        "call with another CA's certificate answered: {refused:?}"
    );

    // And a client that trusts only the other CA does not accept the issuer.
    let mistrusting = write_config(
        &dir,
        "mistrusting",
        &other_ca.leaf(&["authorization"], ExtendedKeyUsagePurpose::ClientAuth),
        &other_ca.pem,
    );
    let refused = reverse(pos_tls::endpoint(&url, Some(&mistrusting)).unwrap()).await;
    assert!(
        refused.is_err(),
        "server of an untrusted CA accepted: {refused:?}"
    );

    // The refusals did not take the server down.
    let endpoint = pos_tls::endpoint(&url, Some(&client_tls)).unwrap();
    assert_eq!(reverse(endpoint).await.unwrap().response_code, "00");
    issuer.stop();
}

/// The gateway is an edge: operators reach it over TLS without a client certificate, verify it
/// with the CA, and still need their bearer token; plaintext is refused.
#[test]
fn operators_reach_the_gateway_over_tls_with_their_token() {
    let env = TestEnv::new();
    let dir = std::env::temp_dir().join("pos-tests").join(&env.namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new("pos test CA");
    let server = write_config(
        &dir,
        "gateway",
        &ca.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        &ca.pem,
    );
    let token = "tls-admin-token-1";
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    std::fs::write(dir.join("operators"), format!("admin admin {digest}\n")).unwrap();
    let port = free_port();
    let envs = [
        ("POS_GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
        ("POS_GATEWAY_METRICS", format!("127.0.0.1:{}", free_port())),
        ("POS_KAFKA", env.kafka.clone()),
        ("POS_TOPIC_NAMESPACE", env.namespace.clone()),
        ("POS_REDIS", env.redis.clone()),
        ("POS_REDIS_PREFIX", env.namespace.clone()),
        (
            "POS_HSM_LMK_FILE",
            dir.join("lmk.hex").display().to_string(),
        ),
        (
            "POS_TOKEN_KEY_FILE",
            dir.join("token-key.hex").display().to_string(),
        ),
        (
            "POS_DATA_KEY_FILE",
            dir.join("data-key.hex").display().to_string(),
        ),
        (
            "POS_OPERATORS_FILE",
            dir.join("operators").display().to_string(),
        ),
        ("POS_AUTHORIZATION_URL", "https://localhost:1".to_owned()),
        ("POS_REVERSAL_URL", "https://localhost:1".to_owned()),
        ("POS_SETTLEMENT_URL", "https://localhost:1".to_owned()),
        ("POS_TLS_CERT", server.cert.display().to_string()),
        ("POS_TLS_KEY", server.key.display().to_string()),
        ("POS_TLS_CA", server.ca.display().to_string()),
    ];
    let mut gateway = ServiceProcess::start("terminal-gateway", &envs, &dir);
    gateway.wait_for_port(port);

    let posctl = |url: String, ca: Option<&Path>, token: &str| {
        let mut envs = vec![("POSCTL_GATEWAY", url), ("POSCTL_TOKEN", token.to_owned())];
        if let Some(ca) = ca {
            envs.push(("POSCTL_CA", ca.display().to_string()));
        }
        pos_testkit::run_cli("posctl", &["merchant", "list"], &envs, &dir)
    };
    let over_tls = posctl(format!("https://localhost:{port}"), Some(&server.ca), token);
    assert!(
        over_tls.status.success(),
        "{}",
        String::from_utf8_lossy(&over_tls.stderr)
    );
    let wrong_token = posctl(
        format!("https://localhost:{port}"),
        Some(&server.ca),
        "guess",
    );
    assert!(String::from_utf8_lossy(&wrong_token.stderr).contains("unknown operator credential"));
    let plaintext = posctl(format!("http://127.0.0.1:{port}"), None, token);
    assert!(
        !plaintext.status.success(),
        "plaintext must not reach a TLS gateway"
    );
}
