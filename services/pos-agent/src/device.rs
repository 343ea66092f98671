//! What the terminal keeps on its own storage, in its data directory with owner-only
//! permissions (directory 0700, files 0600): its identity and terminal master key from
//! activation (`terminal.json`), the working keys, batch and counters of the current sign-in
//! (`session.json`), written atomically (temporary file, then rename), and the journal of
//! reversals and transactions (`journal.redb`, see [`crate::journal`]).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use pos_crypto::DesKey;
use serde::{Deserialize, Serialize};

/// The device's identity, from activation.
#[derive(Serialize, Deserialize)]
pub struct Identity {
    /// Terminal id (DE41).
    pub terminal_id: String,
    /// Merchant id (DE42).
    pub merchant_id: String,
    /// Merchant name for receipts.
    pub merchant_name: String,
    /// Device serial number bound at activation.
    pub serial_number: String,
    /// Terminal master key, hex.
    pub tmk: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("terminal_id", &self.terminal_id)
            .field("merchant_id", &self.merchant_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The terminal master key.
    pub fn tmk(&self) -> anyhow::Result<DesKey> {
        DesKey::from_hex(&self.tmk).context("terminal.json holds a damaged master key")
    }
}

/// The current sign-in: working keys, batch, message counter and logged-in operator.
#[derive(Serialize, Deserialize, Default)]
pub struct Session {
    /// Working key version from the host.
    pub key_version: u32,
    /// PIN key, hex.
    pub pin_key: String,
    /// MAC key, hex.
    pub mac_key: String,
    /// Open batch number.
    pub batch_no: u32,
    /// Next message sequence number to use.
    pub next_message_seq: u64,
    /// Logged-in operator number; empty when none.
    pub operator_no: String,
    /// Next system trace audit number (STAN), 1..=999999.
    #[serde(default)]
    pub next_stan: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("key_version", &self.key_version)
            .field("batch_no", &self.batch_no)
            .field("operator_no", &self.operator_no)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The MAC working key.
    pub fn mac_key(&self) -> anyhow::Result<DesKey> {
        DesKey::from_hex(&self.mac_key).context("session.json holds a damaged MAC key")
    }

    /// The PIN working key.
    pub fn pin_key(&self) -> anyhow::Result<DesKey> {
        DesKey::from_hex(&self.pin_key).context("session.json holds a damaged PIN key")
    }

    /// Takes the next STAN (wrapping from 999999 to 1).
    pub fn take_stan(&mut self) -> u32 {
        let stan = if (1..=999_999).contains(&self.next_stan) {
            self.next_stan
        } else {
            1
        };
        self.next_stan = if stan == 999_999 { 1 } else { stan + 1 };
        stan
    }

    /// Takes the next message sequence number.
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_message_seq.max(1);
        self.next_message_seq = seq + 1;
        seq
    }
}

/// The terminal's data directory.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// Opens (creating with mode 0700) the data directory.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("cannot create the data directory {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self(path.to_owned()))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The identity, or a clear error when the terminal was never activated.
    pub fn identity(&self) -> anyhow::Result<Identity> {
        self.read("terminal.json").with_context(|| {
            format!(
                "this terminal is not activated ({}); run `pos-agent activate --code CODE`",
                self.0.display()
            )
        })
    }

    /// Whether an identity exists.
    pub fn is_activated(&self) -> bool {
        self.file("terminal.json").exists()
    }

    /// Stores the identity.
    pub fn save_identity(&self, identity: &Identity) -> anyhow::Result<()> {
        self.write("terminal.json", identity)
    }

    /// Where receipts are saved, one file per copy.
    pub fn receipts(&self) -> PathBuf {
        self.0.join("receipts")
    }

    /// The journal's file.
    pub fn journal(&self) -> PathBuf {
        self.file("journal.redb")
    }

    /// The current session, or a clear error when the terminal has not signed in.
    pub fn session(&self) -> anyhow::Result<Session> {
        self.read("session.json")
            .context("this terminal has not signed in; run `pos-agent sign-in`")
    }

    /// Stores the session.
    pub fn save_session(&self, session: &Session) -> anyhow::Result<()> {
        self.write("session.json", session)
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, name: &str) -> anyhow::Result<T> {
        let path = self.file(name);
        let text = std::fs::read_to_string(&path)?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    fn write<T: Serialize>(&self, name: &str, value: &T) -> anyhow::Result<()> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let json = serde_json::to_vec_pretty(value)?;
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }
}
