//! Who may call the administrative APIs (TerminalManagement on the gateway, merchant
//! settlement on the settlement service): operators present a bearer token in the
//! `authorization` metadata; a service keeps only SHA-256 digests of the tokens, each with the
//! operator's name and roles, in the operators file (`POS_OPERATORS_FILE`, one
//! `name roles sha256-hex` per line). Every call checks a role before it does anything and is
//! recorded as an `OperatorActionRecorded` event ([`action_record`]). [`OperatorGate`] does
//! all of that for a service's operator calls (settlement, fraud-check): it reads the file at
//! each call, checks one role and publishes the record on the service's topic.
//!
//! Every service that serves operators reads the same file, so one token works everywhere and
//! a role means the same thing everywhere.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pos_proto::v1 as pb;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

mod gate;

pub use gate::OperatorGate;

/// Result alias of the crate.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// What can go wrong with the operators file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file has a bad line or lists nobody.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Onboard, approve and activate merchants; register and activate terminals.
    Onboarding,
    /// Suspend merchants and terminals, manage blacklists, read fraud alerts.
    Risk,
    /// Run and read settlements.
    Settlement,
    /// Everything, including unlocking operators.
    Admin,
}

impl Role {
    /// The role's name in credentials files and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Onboarding => "onboarding",
            Role::Risk => "risk",
            Role::Settlement => "settlement",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "onboarding" => Ok(Role::Onboarding),
            "risk" => Ok(Role::Risk),
            "settlement" => Ok(Role::Settlement),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}` (onboarding, risk, settlement, admin)"
            )),
        }
    }
}

/// An authenticated operator.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The operator's name, as recorded in audit events.
    pub name: String,
    /// The operator's roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// Fails with `PermissionDenied` unless the caller has `role` (or is an admin).
    pub fn require(&self, role: Role) -> std::result::Result<(), Status> {
        if self.roles.contains(&role) || self.roles.contains(&Role::Admin) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "operator {} lacks the {} role",
            self.name,
            role.as_str()
        )))
    }

    /// The roles as one comma-separated string (for audit events).
    pub fn roles_text(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The caller as events name it: subject `ops:{name}` and the roles.
    pub fn actor(&self) -> pb::Actor {
        pb::Actor {
            subject: format!("ops:{}", self.name),
            role: self.roles_text(),
        }
    }
}

struct Entry {
    name: String,
    roles: Vec<Role>,
    digest: [u8; 32],
}

/// The operator credentials a service accepts.
pub struct Credentials {
    entries: Vec<Entry>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        f.debug_struct("Credentials")
            .field("operators", &names)
            .finish()
    }
}

impl Credentials {
    /// Parses a credentials file: `name roles sha256-hex` per line, `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let entry = parse_line(line).map_err(|e| {
                AuthError::Invalid(format!("operators file line {}: {e}", number + 1))
            })?;
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(AuthError::Invalid(
                "the operators file lists no operator".to_owned(),
            ));
        }
        Ok(Self { entries })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Loads `path`; when it does not exist, creates it with one `admin` operator and writes
    /// that operator's token to `admin.token` beside it (owner-only permissions). Returns the
    /// credentials and the token file when one was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, Option<PathBuf>)> {
        if path.exists() {
            return Ok((Self::load(path)?, None));
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = hex::encode(secret);
        let token_file = path.with_file_name("admin.token");
        write_private(&token_file, token.as_bytes())?;
        let line = format!("admin admin {}\n", hex::encode(digest(&token)));
        write_private(path, line.as_bytes())?;
        Ok((Self::parse(&line)?, Some(token_file)))
    }

    /// The operator presenting the bearer token in `metadata`.
    pub fn authenticate(&self, metadata: &MetadataMap) -> std::result::Result<Caller, Status> {
        let header = metadata.get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing operator credential (authorization: Bearer TOKEN)")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer TOKEN`"))?;
        let presented = digest(token.trim());
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        found
            .map(|e| Caller {
                name: e.name.clone(),
                roles: e.roles.clone(),
            })
            .ok_or_else(|| Status::unauthenticated("unknown operator credential"))
    }
}

fn parse_line(line: &str) -> std::result::Result<Entry, String> {
    let mut parts = line.split_whitespace();
    let (Some(name), Some(roles), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected `name roles sha256-hex`".to_owned());
    };
    let roles = roles
        .split(',')
        .map(Role::from_str)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let bytes = hex::decode(hash).map_err(|_| "the token digest is not hex".to_owned())?;
    let digest: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "the token digest must be 32 bytes (SHA-256)".to_owned())?;
    Ok(Entry {
        name: name.to_owned(),
        roles,
        digest,
    })
}

/// SHA-256 of a token, as stored in the credentials file.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Writes `contents` to a new file readable only by its owner (directories created as needed).
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let io = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)
}

/// The audit record of one operator call: who (`caller`), what (`action`, the full gRPC
/// method, e.g. "/pos.v1.Settlement/RunMerchantSettlement"), on what, and how it ended.
/// Denials are `DENIED`, unavailable or internal failures `FAILED`, other errors `REFUSED`.
pub fn action_record<T>(
    caller: &Caller,
    action: &str,
    (target_type, target_id): (&str, &str),
    outcome: &std::result::Result<T, Status>,
    client_address: String,
) -> pb::OperatorActionRecorded {
    let (result, code, detail) = match outcome {
        Ok(_) => (pb::ActionOutcome::Succeeded, "OK".to_owned(), String::new()),
        Err(status) => {
            let result = match status.code() {
                tonic::Code::PermissionDenied => pb::ActionOutcome::Denied,
                tonic::Code::Internal | tonic::Code::Unavailable => pb::ActionOutcome::Failed,
                _ => pb::ActionOutcome::Refused,
            };
            (
                result,
                format!("{:?}", status.code()),
                status.message().to_owned(),
            )
        }
    };
    pb::OperatorActionRecorded {
        actor: Some(caller.actor()),
        action: action.to_owned(),
        target_type: target_type.to_owned(),
        target_id: target_id.to_owned(),
        outcome: result as i32,
        status_code: code,
        detail,
        client_address,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn metadata(token: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", format!("Bearer {token}").parse().unwrap());
        m
    }

    fn creds() -> Credentials {
        let text = format!(
            "# test operators\nalice onboarding {}\nbob risk,settlement {}\nroot admin {}\n",
            hex::encode(digest("alice-token")),
            hex::encode(digest("bob-token")),
            hex::encode(digest("root-token")),
        );
        Credentials::parse(&text).unwrap()
    }

    #[test]
    fn a_known_token_authenticates_with_its_roles() {
        let caller = creds().authenticate(&metadata("bob-token")).unwrap();
        assert_eq!(caller.name, "bob");
        assert!(caller.require(Role::Risk).is_ok());
        let denied = caller.require(Role::Onboarding).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("onboarding"));
        assert_eq!(caller.actor().subject, "ops:bob");
        assert_eq!(caller.actor().role, "risk,settlement");
    }

    #[test]
    fn admin_may_do_everything() {
        let caller = creds().authenticate(&metadata("root-token")).unwrap();
        for role in [Role::Onboarding, Role::Risk, Role::Settlement, Role::Admin] {
            assert!(caller.require(role).is_ok());
        }
    }

    #[test]
    fn unknown_or_missing_tokens_are_unauthenticated() {
        let creds = creds();
        let unknown = creds.authenticate(&metadata("guess")).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        let missing = creds.authenticate(&MetadataMap::new()).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let err = Credentials::parse("alice wizard 00")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("unknown role"),
            "{err}"
        );
        let err = Credentials::parse("alice admin zz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not hex"), "{err}");
        assert!(Credentials::parse("# nobody\n").is_err());
    }

    #[test]
    fn a_missing_file_is_created_with_an_admin_whose_token_works() {
        let dir = std::env::temp_dir().join(format!("pos-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("operators");
        let (created, token_file) = Credentials::load_or_create(&path).unwrap();
        let token = std::fs::read_to_string(token_file.unwrap()).unwrap();
        let caller = created.authenticate(&metadata(&token)).unwrap();
        assert_eq!(caller.name, "admin");
        let (loaded, again) = Credentials::load_or_create(&path).unwrap();
        assert!(again.is_none());
        assert!(loaded.authenticate(&metadata(&token)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_action_record_names_the_caller_and_the_outcome() {
        let caller = creds().authenticate(&metadata("bob-token")).unwrap();
        let denied: std::result::Result<(), Status> = Err(Status::permission_denied("no"));
        let record = action_record(
            &caller,
            "/pos.v1.Settlement/RunMerchantSettlement",
            ("merchant_settlement", "M:2025-01-01"),
            &denied,
            "127.0.0.1:5".to_owned(),
        );
        assert_eq!(record.outcome, pb::ActionOutcome::Denied as i32);
        assert_eq!(record.status_code, "PermissionDenied");
        assert_eq!(record.actor.unwrap().subject, "ops:bob");
        let done = action_record(
            &caller,
            "x",
            ("t", "i"),
            &Ok::<(), Status>(()),
            String::new(),
        );
        assert_eq!(done.outcome, pb::ActionOutcome::Succeeded as i32);
    }
}
