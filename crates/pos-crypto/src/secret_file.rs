//! The secret files terminal-gateway creates (its software HSM's master key, the card token
//! key) as the other services read them: they must exist (a new key would not match the
//! gateway's) and be readable by their owner only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;

/// Reads a 32-byte hex secret that terminal-gateway created; refuses a missing file (a new key
/// would not match the gateway's) and one that others can read.
pub fn read_key_file(path: &Path, setting: &str) -> anyhow::Result<[u8; 32]> {
    let metadata = std::fs::metadata(path).with_context(|| {
        format!(
            "{} ({setting}) is missing: it is terminal-gateway's, start the gateway first or \
             point {setting} at its file",
            path.display()
        )
    })?;
    anyhow::ensure!(
        metadata.permissions().mode() & 0o077 == 0,
        "{} is readable by group or others; chmod 600 it",
        path.display()
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .map_err(|_| anyhow::anyhow!("{} must hold 64 hex characters", path.display()))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} must hold 64 hex characters", path.display()))
}
