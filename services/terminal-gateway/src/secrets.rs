//! Local secret files of a single-machine deployment (the software HSM's master key, the token
//! key, the first admin token): created once with owner-only permissions, read at start-up.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;

/// `N` random bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Writes `contents` to a new file readable only by its owner (directories created as needed).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    file.write_all(contents)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// Reads a 32-byte hex secret from `path`, creating a random one first when it is missing.
/// Refuses a file that others can read.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    if !path.exists() {
        write_private(path, hex::encode(random_bytes::<32>()).as_bytes())?;
        tracing::warn!(path = %path.display(), "created a new local secret key file");
    }
    let mode = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
        .permissions()
        .mode();
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} is readable by group or others; chmod 600 it",
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .map_err(|_| anyhow::anyhow!("{} must hold 64 hex characters", path.display()))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} must hold 64 hex characters", path.display()))
}
