//! The terminal's connection to the gateway: one `Connect` stream per command, every message
//! MACed (ANSI X9.19 over the message's protobuf encoding with `mac` empty), every answer's MAC
//! checked before it is believed.

use std::time::Duration;

use anyhow::{Context, bail};
use pos_crypto::{DesKey, retail_mac, verify_retail_mac};
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_gateway_client::TerminalGatewayClient;
use pos_proto::v1::terminal_message::Body;
use pos_proto::v1::{HostMessage, TerminalMessage};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long the terminal waits for an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The bytes a message's MAC covers: its encoding with `mac` empty.
pub fn mac_input_terminal(message: &mut TerminalMessage) -> Vec<u8> {
    let mac = std::mem::take(&mut message.mac);
    let bytes = message.encode_to_vec();
    message.mac = mac;
    bytes
}

/// The bytes a host answer's MAC covers: its encoding with `mac` empty.
pub fn mac_input_host(message: &mut HostMessage) -> Vec<u8> {
    let mac = std::mem::take(&mut message.mac);
    let bytes = message.encode_to_vec();
    message.mac = mac;
    bytes
}

/// An open `Connect` stream.
#[derive(Debug)]
pub struct Link {
    terminal_id: String,
    outgoing: mpsc::Sender<TerminalMessage>,
    incoming: Streaming<HostMessage>,
}

impl Link {
    /// Opens the stream over a connection to the host.
    pub async fn open(channel: Channel, terminal_id: &str) -> anyhow::Result<Self> {
        let (outgoing, receiver) = mpsc::channel(16);
        let incoming = TerminalGatewayClient::new(channel)
            .connect(ReceiverStream::new(receiver))
            .await
            .context("the host refused the connection")?
            .into_inner();
        Ok(Self {
            terminal_id: terminal_id.to_owned(),
            outgoing,
            incoming,
        })
    }

    /// Sends `body` as message `seq`, MACed under `key`, and returns the host's answer to it.
    /// `session_key` verifies the answer's MAC (`None` before a session exists).
    pub async fn exchange(
        &mut self,
        seq: u64,
        body: Body,
        key: &DesKey,
        session_key: Option<&DesKey>,
    ) -> anyhow::Result<HostBody> {
        let mut message = TerminalMessage {
            terminal_id: self.terminal_id.clone(),
            message_seq: seq,
            mac: Vec::new(),
            body: Some(body),
        };
        message.mac = retail_mac(key, &mac_input_terminal(&mut message)).to_vec();
        self.outgoing
            .send(message)
            .await
            .context("the connection to the host closed")?;
        loop {
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.incoming.message())
                .await
                .context("no answer from the host in time")?
                .context("the host closed the connection")?
                .context("the host closed the connection without answering")?;
            if answer.in_reply_to != seq {
                continue; // a pushed command or a late answer; not ours
            }
            return verify(answer, session_key);
        }
    }
}

fn verify(mut answer: HostMessage, session_key: Option<&DesKey>) -> anyhow::Result<HostBody> {
    let exempt = matches!(
        answer.body,
        Some(HostBody::SignIn(_)) | Some(HostBody::Error(_))
    ) && answer.mac.is_empty();
    if !exempt {
        let Some(key) = session_key else {
            bail!("the host's answer carries a MAC but no session key is known");
        };
        let input = mac_input_host(&mut answer);
        if !verify_retail_mac(key, &input, &answer.mac) {
            bail!("the host's answer failed its MAC check (A0); it is not trusted");
        }
    }
    answer
        .body
        .context("the host answered with an empty message")
}
