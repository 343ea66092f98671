//! Who may call the management API: operators present a bearer token in the `authorization`
//! metadata; the gateway keeps only SHA-256 digests of the tokens, each with the operator's
//! name and roles. Every management call checks a role before it does anything.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::secrets;

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

    fn from_str(s: &str) -> Result<Self, Self::Err> {
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
    pub fn require(&self, role: Role) -> Result<(), Status> {
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
}

struct Entry {
    name: String,
    roles: Vec<Role>,
    digest: [u8; 32],
}

/// The operator credentials the gateway accepts.
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
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let entry = parse_line(line)
                .map_err(|e| anyhow::anyhow!("operators file line {}: {e}", number + 1))?;
            entries.push(entry);
        }
        anyhow::ensure!(!entries.is_empty(), "the operators file lists no operator");
        Ok(Self { entries })
    }

    /// Loads `path`; when it does not exist, creates it with one `admin` operator and writes
    /// that operator's token to `admin.token` beside it (owner-only permissions). Returns the
    /// credentials and the token file when one was created.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Self, Option<PathBuf>)> {
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            return Ok((Self::parse(&text)?, None));
        }
        let token = hex::encode(secrets::random_bytes::<32>());
        let token_file = path.with_file_name("admin.token");
        secrets::write_private(&token_file, token.as_bytes())?;
        let line = format!("admin admin {}\n", hex::encode(digest(&token)));
        secrets::write_private(path, line.as_bytes())?;
        Ok((Self::parse(&line)?, Some(token_file)))
    }

    /// The operator presenting the bearer token in `metadata`.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
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

fn parse_line(line: &str) -> Result<Entry, String> {
    let mut parts = line.split_whitespace();
    let (Some(name), Some(roles), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected `name roles sha256-hex`".to_owned());
    };
    let roles = roles
        .split(',')
        .map(Role::from_str)
        .collect::<Result<Vec<_>, _>>()?;
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

#[cfg(test)]
mod tests {
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
    }
}
