//! The terminal's commands, each one exchange with the host.

use std::time::SystemTime;

use anyhow::{Context, bail};
use pos_crypto::{DesKey, DeviceKeyPair, SealedTmk, pinblock};
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_gateway_client::TerminalGatewayClient;
use pos_proto::v1::terminal_message::Body;
use rand::RngCore;
use tonic::transport::Channel;

use crate::device::{DataDir, Identity, Session};
use crate::link::Link;

/// The software version reported at sign-in.
const SOFTWARE_VERSION: &str = concat!("pos-agent ", env!("CARGO_PKG_VERSION"));

/// The terminal: its data directory and its host.
#[derive(Debug)]
pub struct Terminal {
    dir: DataDir,
    gateway: String,
}

impl Terminal {
    /// A terminal whose state lives in `dir`, talking to `gateway`.
    pub fn new(dir: DataDir, gateway: String) -> Self {
        Self { dir, gateway }
    }

    /// Activation: an ephemeral X25519 key pair, the code and the serial go to the host, the
    /// TMK comes back sealed to this device and is checked against its check value.
    pub async fn activate(&self, code: &str, serial: &str) -> anyhow::Result<()> {
        if self.dir.is_activated() {
            bail!("this device is already activated; use a fresh data directory to re-bind it");
        }
        let device = DeviceKeyPair::generate();
        let channel = Channel::from_shared(self.gateway.clone())?
            .connect()
            .await
            .with_context(|| format!("cannot reach the host at {}", self.gateway))?;
        let answer = TerminalGatewayClient::new(channel)
            .activate(pb::ActivateRequest {
                activation_code: code.trim().to_owned(),
                serial_number: serial.to_owned(),
                device_public_key: device.public_key().to_vec(),
                ..pb::ActivateRequest::default()
            })
            .await
            .map_err(|status| anyhow::anyhow!("activation refused: {}", status.message()))?
            .into_inner();
        let sealed = SealedTmk {
            host_public_key: fixed(&answer.host_public_key, "host public key")?,
            nonce: fixed(&answer.tmk_nonce, "nonce")?,
            ciphertext: answer.tmk_ciphertext.clone(),
        };
        let tmk = device
            .open_tmk(&sealed, &answer.terminal_id)
            .context("the terminal master key could not be opened")?;
        if tmk.check_value().as_slice() != answer.tmk_check_value.as_slice() {
            bail!("the terminal master key does not match its check value; activation aborted");
        }
        self.dir.save_identity(&Identity {
            terminal_id: answer.terminal_id.clone(),
            merchant_id: answer.merchant_id.clone(),
            merchant_name: answer.merchant_name.clone(),
            serial_number: serial.to_owned(),
            tmk: hex::encode(tmk.expose_bytes()),
        })?;
        println!(
            "activated: terminal {} of merchant {} ({})",
            answer.terminal_id, answer.merchant_id, answer.merchant_name
        );
        println!(
            "operators: 00 (supervisor) and 01 (cashier) with password 0000; change it at first login"
        );
        Ok(())
    }

    /// Sign-in 签到: MACed under the TMK; the working keys arrive under the TMK and are checked
    /// against their check values before they are kept.
    pub async fn sign_in(&self) -> anyhow::Result<()> {
        let identity = self.dir.identity()?;
        let tmk = identity.tmk()?;
        let previous = self.dir.session().ok();
        let mut nonce = vec![0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let request = pb::SignInRequest {
            terminal_id: identity.terminal_id.clone(),
            serial_number: identity.serial_number.clone(),
            software_version: SOFTWARE_VERSION.to_owned(),
            nonce,
            terminal_time: Some(prost_types::Timestamp::from(SystemTime::now())),
            open_batch_no: previous.as_ref().map_or(0, |s| s.batch_no),
            pending_reversals: 0,
        };
        let mut link = Link::open(&self.gateway, &identity.terminal_id).await?;
        let answer = link.exchange(1, Body::SignIn(request), &tmk, None).await?;
        let response = match answer {
            HostBody::SignIn(response) => response,
            other => return Err(refusal(other)),
        };
        let pin_key = working_key(
            &tmk,
            &response.pin_key_under_tmk,
            &response.pin_key_check_value,
            "PIN",
        )?;
        let mac_key = working_key(
            &tmk,
            &response.mac_key_under_tmk,
            &response.mac_key_check_value,
            "MAC",
        )?;
        self.dir.save_session(&Session {
            key_version: response.key_version,
            pin_key: hex::encode(pin_key.expose_bytes()),
            mac_key: hex::encode(mac_key.expose_bytes()),
            batch_no: response.batch_no,
            next_message_seq: 1,
            operator_no: String::new(),
        })?;
        println!(
            "signed in: terminal {} batch {:06} key version {}",
            identity.terminal_id, response.batch_no, response.key_version
        );
        println!(
            "merchant: {} {}",
            response.merchant_id, response.merchant_name
        );
        Ok(())
    }

    /// Operator login: the password travels as a format-1 block under the PIN key.
    pub async fn login(&self, operator: &str, password: &str) -> anyhow::Result<()> {
        let (identity, mut session) = self.signed_in()?;
        let block = password_block(&session.pin_key()?, password)?;
        let body = Body::OperatorLogin(pb::OperatorLoginRequest {
            operator_no: operator.to_owned(),
            password_block: block,
        });
        let answer = self.exchange(&identity, &mut session, body).await?;
        let HostBody::OperatorLogin(response) = answer else {
            return Err(refusal(answer));
        };
        if response.response_code != "00" {
            bail!(
                "login refused ({}): {}{}",
                response.response_code,
                response.response_message,
                if response.remaining_attempts > 0 {
                    format!("; {} attempts left", response.remaining_attempts)
                } else {
                    String::new()
                }
            );
        }
        session.operator_no = operator.to_owned();
        self.dir.save_session(&session)?;
        println!("operator {operator} logged in");
        if response.must_change_password {
            println!(
                "the default password must be changed: pos-agent password --operator {operator} --old OLD --new NEW"
            );
        }
        Ok(())
    }

    /// Password change of an operator.
    pub async fn change_password(
        &self,
        operator: &str,
        old: &str,
        new: &str,
    ) -> anyhow::Result<()> {
        let (identity, mut session) = self.signed_in()?;
        let pin_key = session.pin_key()?;
        let body = Body::ChangeOperatorPassword(pb::ChangeOperatorPassword {
            operator_no: operator.to_owned(),
            current_password_block: password_block(&pin_key, old)?,
            new_password_block: password_block(&pin_key, new)?,
        });
        let answer = self.exchange(&identity, &mut session, body).await?;
        acknowledged(answer, "password change")?;
        println!("operator {operator}: password changed");
        Ok(())
    }

    /// Supervisor unlock of a locked cashier.
    pub async fn unlock(&self, operator: &str, supervisor_password: &str) -> anyhow::Result<()> {
        let (identity, mut session) = self.signed_in()?;
        let body = Body::UnlockOperator(pb::UnlockOperatorOnTerminal {
            operator_no: operator.to_owned(),
            supervisor_password_block: password_block(&session.pin_key()?, supervisor_password)?,
        });
        let answer = self.exchange(&identity, &mut session, body).await?;
        acknowledged(answer, "unlock")?;
        println!("operator {operator} unlocked");
        Ok(())
    }

    fn signed_in(&self) -> anyhow::Result<(Identity, Session)> {
        Ok((self.dir.identity()?, self.dir.session()?))
    }

    /// One MACed exchange under the session keys; the message counter is saved before sending
    /// so that a number is never used twice.
    async fn exchange(
        &self,
        identity: &Identity,
        session: &mut Session,
        body: Body,
    ) -> anyhow::Result<HostBody> {
        let seq = session.take_seq();
        self.dir.save_session(session)?;
        let mac_key = session.mac_key()?;
        let mut link = Link::open(&self.gateway, &identity.terminal_id).await?;
        link.exchange(seq, body, &mac_key, Some(&mac_key)).await
    }
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> anyhow::Result<[u8; N]> {
    bytes.try_into().map_err(|_| {
        anyhow::anyhow!(
            "the host sent a {what} of {} bytes, expected {N}",
            bytes.len()
        )
    })
}

fn working_key(
    tmk: &DesKey,
    under_tmk: &[u8],
    check_value: &[u8],
    name: &str,
) -> anyhow::Result<DesKey> {
    let under_tmk: [u8; 16] = fixed(under_tmk, "working key")?;
    let check_value: [u8; 4] = fixed(check_value, "check value")?;
    tmk.decrypt_working_key(&under_tmk, &check_value)
        .with_context(|| format!("the {name} key failed its check value; sign-in aborted"))
}

fn password_block(pin_key: &DesKey, password: &str) -> anyhow::Result<Vec<u8>> {
    let block = pinblock::format1(password).context("passwords are 4 to 12 digits")?;
    Ok(pin_key.encrypt_ecb(&block)?)
}

fn acknowledged(answer: HostBody, what: &str) -> anyhow::Result<()> {
    match answer {
        HostBody::Ack(ack) if ack.response_code == "00" => Ok(()),
        HostBody::Ack(ack) => bail!(
            "{what} refused ({}): {}",
            ack.response_code,
            ack.response_message
        ),
        other => Err(refusal(other)),
    }
}

/// An answer that is not what the request expects: the host's error, or a protocol surprise.
fn refusal(answer: HostBody) -> anyhow::Error {
    match answer {
        HostBody::Error(error) => anyhow::anyhow!(
            "refused by the host ({}): {}",
            error.response_code,
            error.response_message
        ),
        other => anyhow::anyhow!("unexpected answer from the host: {other:?}"),
    }
}
