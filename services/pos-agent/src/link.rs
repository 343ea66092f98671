//! The terminal's connection to the gateway: one `Connect` stream per command, every message
//! MACed (ANSI X9.19 over the message's protobuf encoding with `mac` empty), every answer's MAC
//! checked before it is believed.

use std::time::Duration;

use anyhow::Context;
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

/// Why a request got no answer the terminal can believe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// Nothing came back within the answer timeout.
    Timeout(Duration),
    /// The stream ended or broke before the answer came.
    Closed(String),
    /// The answer failed its MAC check (A0).
    BadMac,
    /// The answer cannot be used: MACed while no session key is known, or empty.
    Unusable(&'static str),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Timeout(after) => {
                write!(f, "no answer from the host within {} s", after.as_secs())
            }
            NoAnswer::Closed(why) => f.write_str(why),
            NoAnswer::BadMac => {
                f.write_str("the host's answer failed its MAC check (A0); it is not trusted")
            }
            NoAnswer::Unusable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for NoAnswer {}

/// An open `Connect` stream.
#[derive(Debug)]
pub struct Link {
    terminal_id: String,
    outgoing: mpsc::Sender<TerminalMessage>,
    incoming: Streaming<HostMessage>,
    answer_timeout: Duration,
}

impl Link {
    /// Opens the stream over a connection to the host; answers are awaited for at most
    /// `answer_timeout`.
    pub async fn open(
        channel: Channel,
        terminal_id: &str,
        answer_timeout: Duration,
    ) -> anyhow::Result<Self> {
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
            answer_timeout,
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
        self.send(seq, body, key).await?;
        Ok(self.answer(seq, session_key).await?)
    }

    /// Hands `body`, as message `seq` MACed under `key`, to the stream. An error means the
    /// message never left: the stream was already closed.
    pub async fn send(&mut self, seq: u64, body: Body, key: &DesKey) -> anyhow::Result<()> {
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
            .map_err(|_| anyhow::anyhow!("the connection to the host closed"))
    }

    /// Waits for the answer to message `seq` and checks its MAC under `session_key`. Pushed
    /// commands and late answers to other messages are skipped.
    pub async fn answer(
        &mut self,
        seq: u64,
        session_key: Option<&DesKey>,
    ) -> Result<HostBody, NoAnswer> {
        let deadline = tokio::time::Instant::now() + self.answer_timeout;
        loop {
            let answer = tokio::time::timeout_at(deadline, self.incoming.message())
                .await
                .map_err(|_| NoAnswer::Timeout(self.answer_timeout))?
                .map_err(|status| {
                    NoAnswer::Closed(format!(
                        "the connection to the host broke: {}",
                        status.message()
                    ))
                })?
                .ok_or_else(|| {
                    NoAnswer::Closed("the host closed the connection without answering".to_owned())
                })?;
            if answer.in_reply_to != seq {
                continue; // a pushed command or a late answer; not ours
            }
            return verify(answer, session_key);
        }
    }
}

fn verify(mut answer: HostMessage, session_key: Option<&DesKey>) -> Result<HostBody, NoAnswer> {
    let exempt = matches!(
        answer.body,
        Some(HostBody::SignIn(_)) | Some(HostBody::Error(_))
    ) && answer.mac.is_empty();
    if !exempt {
        let Some(key) = session_key else {
            return Err(NoAnswer::Unusable(
                "the host's answer carries a MAC but no session key is known",
            ));
        };
        let input = mac_input_host(&mut answer);
        if !verify_retail_mac(key, &input, &answer.mac) {
            return Err(NoAnswer::BadMac);
        }
    }
    answer.body.ok_or(NoAnswer::Unusable(
        "the host answered with an empty message",
    ))
}
