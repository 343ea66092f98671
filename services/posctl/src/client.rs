//! The connections posctl makes: the gateway's management API and the fraud-check service, one
//! channel each, the operator's bearer token on every call.

use std::path::PathBuf;

use anyhow::Context;
use pos_proto::v1::fraud_check_client::FraudCheckClient;
use pos_proto::v1::terminal_management_client::TerminalManagementClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Where and as whom posctl connects.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Management API address of the terminal gateway.
    #[arg(
        long,
        global = true,
        env = "POSCTL_GATEWAY",
        default_value = "http://127.0.0.1:7001"
    )]
    pub gateway: String,
    /// Operator token (prefer POSCTL_TOKEN or --token-file: command lines are visible to others).
    #[arg(long, global = true, env = "POSCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the gateway's certificate, for an https:// gateway.
    #[arg(long, global = true, env = "POSCTL_CA")]
    pub ca: Option<PathBuf>,
    /// File holding the operator token.
    #[arg(
        long,
        global = true,
        env = "POSCTL_TOKEN_FILE",
        default_value = ".pos/admin.token"
    )]
    pub token_file: PathBuf,
    /// Address of the fraud-check service (blacklists and fraud alerts).
    #[arg(
        long,
        global = true,
        env = "POSCTL_FRAUD",
        default_value = "http://127.0.0.1:7005"
    )]
    pub fraud_url: String,
}

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(***)")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// The management client posctl uses.
pub type Management = TerminalManagementClient<InterceptedService<Channel, Bearer>>;

/// The fraud-check client posctl uses.
pub type FraudCheck = FraudCheckClient<InterceptedService<Channel, Bearer>>;

impl Connection {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.trim().to_owned());
        }
        let text = std::fs::read_to_string(&self.token_file).with_context(|| {
            format!(
                "no operator token: set POSCTL_TOKEN or put it in {}",
                self.token_file.display()
            )
        })?;
        Ok(text.trim().to_owned())
    }

    /// The interceptor that sends the operator's token.
    fn bearer(&self) -> anyhow::Result<Bearer> {
        let token = self.token()?;
        let header: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .context("the operator token has characters that cannot be sent")?;
        Ok(Bearer(header))
    }

    /// Connects to the gateway's management API.
    pub async fn management(&self) -> anyhow::Result<Management> {
        let bearer = self.bearer()?;
        let channel = pos_tls::tool_endpoint(&self.gateway, self.ca.as_deref())
            .with_context(|| format!("gateway address {}", self.gateway))?
            .connect()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.gateway))?;
        Ok(TerminalManagementClient::with_interceptor(channel, bearer))
    }

    /// Connects to the fraud-check service (the caller needs the `risk` or `admin` role).
    pub async fn fraud(&self) -> anyhow::Result<FraudCheck> {
        let bearer = self.bearer()?;
        let channel = pos_tls::tool_endpoint(&self.fraud_url, self.ca.as_deref())
            .with_context(|| format!("fraud-check address {}", self.fraud_url))?
            .connect()
            .await
            .with_context(|| format!("cannot reach fraud-check at {}", self.fraud_url))?;
        Ok(FraudCheckClient::with_interceptor(channel, bearer))
    }
}
