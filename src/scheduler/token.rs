//! API tokens and their roles, replicated so that every replica authorizes on its own.
//!
//! A token is a bearer secret `trk_<key>_<secret>`: `key` is 16 hex digits that name it in
//! listings and revocations, `secret` 43 base64url characters (256 random bits). Only the
//! SHA-256 of the whole string is replicated ([`ApiToken::sha256`]); the API creates the
//! secret, shows it once, and commits `CreateToken` with its hash. Randomness and hashing stay
//! outside apply (the API does both): apply only stores, looks up and forgets records.
//!
//! Roles are ordered, each one including the ones below it, except `worker`, which includes
//! nothing else and is bound to one worker id:
//!
//! | role        | may                                                                 |
//! |-------------|---------------------------------------------------------------------|
//! | `admin`     | everything: tokens, membership, backups                             |
//! | `operator`  | + cancel tasks, drain/remove workers, pause/resume/delete schedules  |
//! | `submitter` | + submit tasks, create/update/trigger/backfill schedules             |
//! | `reader`    | GET only                                                            |
//! | `worker`    | the worker protocol for its own worker id and its own attempts only |

use serde::Deserialize;
use serde::Serialize;

use super::command::RejectCode;
use super::command::Rejection;
use super::command::Response;
use super::state::State;
use super::task::FieldError;

/// Most tokens a cluster keeps; creating one more is refused.
pub const MAX_TOKENS: usize = 10_000;
/// Longest token name.
pub const MAX_TOKEN_NAME_BYTES: usize = 128;
/// Length of a token key: 16 hex digits (64 bits).
pub const TOKEN_KEY_LEN: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TokenRole)]
pub enum Role {
    /// GET only.
    Reader,
    /// Submit tasks and schedules, and read.
    Submitter,
    /// Cancel, drain, pause and resume, remove workers; and all a submitter may.
    Operator,
    /// Everything.
    Admin,
    /// The worker protocol, bound to one worker id.
    Worker,
}

impl Role {
    /// Every role, for help texts and errors.
    pub const ALL: [Role; 5] = [Role::Admin, Role::Operator, Role::Submitter, Role::Reader, Role::Worker];

    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Submitter => "submitter",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Worker => "worker",
        }
    }

    /// Whether this role may do what `needed` may. Worker is not in the order: only a worker
    /// (or an admin) satisfies it, and a worker satisfies nothing else.
    pub fn includes(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (Role::Worker, needed) => needed == Role::Worker,
            (_, Role::Worker) => false,
            (have, needed) => have >= needed,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role {s:?}; the roles are {}", names.join(", "))
        })
    }
}

/// A token as the cluster keeps it: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Public name of the token (16 hex digits), part of the token string.
    pub key: String,
    /// Free text naming who holds it (`ci`, `worker-1`).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one worker a `worker` token speaks for; none for other roles.
    pub worker_id: Option<String>,
    /// SHA-256 of the whole token string.
    pub sha256: [u8; 32],
    /// Leader time of creation.
    pub created_ms: u64,
}

impl ApiToken {
    /// The checks the API and apply both make.
    pub fn validate(&self) -> Result<(), FieldError> {
        let field = |field: &str, message: String| FieldError { field: field.into(), message };
        if self.key.len() != TOKEN_KEY_LEN || !self.key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(field("key", format!("must be {TOKEN_KEY_LEN} hex digits")));
        }
        if self.name.is_empty() || self.name.len() > MAX_TOKEN_NAME_BYTES {
            return Err(field("name", format!("must be 1 to {MAX_TOKEN_NAME_BYTES} bytes")));
        }
        if !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b)) {
            return Err(field("name", "may hold only letters, digits and . _ @ -".into()));
        }
        // `token revoke` takes a key or a name: a name shaped like a key would be ambiguous.
        if self.name.len() == TOKEN_KEY_LEN && self.name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(field("name", format!("must not look like a token key ({TOKEN_KEY_LEN} hex digits)")));
        }
        match (&self.worker_id, self.role) {
            (None, Role::Worker) => Err(field("worker_id", "a worker token needs the worker id it speaks for".into())),
            (Some(w), Role::Worker) if w.is_empty() || w.len() > super::MAX_WORKER_ID_BYTES => {
                Err(field("worker_id", format!("must be 1 to {} bytes", super::MAX_WORKER_ID_BYTES)))
            }
            (Some(_), role) if role != Role::Worker => {
                Err(field("worker_id", format!("only worker tokens are bound to a worker, not {role} tokens")))
            }
            _ => Ok(()),
        }
    }
}

impl State {
    /// `CreateToken`: store the record. The same record again (a retried proposal) answers
    /// the stored one; another record under a used key or name is refused.
    pub(crate) fn create_token(&mut self, token: ApiToken) -> Response {
        if let Err(e) = token.validate() {
            return Response::Rejected(Rejection::new(RejectCode::Invalid, format!("{}: {}", e.field, e.message)));
        }
        if let Some(known) = self.tokens.get(&token.key) {
            if known.sha256 == token.sha256 && known.name == token.name && known.role == token.role {
                return Response::Token { token: known.clone(), created: false };
            }
            return Response::Rejected(Rejection::new(
                RejectCode::IdempotencyMismatch,
                format!("token key {} is taken", token.key),
            ));
        }
        if self.tokens.values().any(|t| t.name == token.name) {
            return Response::Rejected(Rejection::new(
                RejectCode::IdempotencyMismatch,
                format!("a token named {:?} exists; revoke it first or pick another name", token.name),
            ));
        }
        if self.tokens.len() >= MAX_TOKENS {
            return Response::Rejected(Rejection::new(
                RejectCode::Invalid,
                format!("the cluster keeps at most {MAX_TOKENS} tokens; revoke unused ones"),
            ));
        }
        self.tokens.insert(token.key.clone(), token.clone());
        Response::Token { token, created: true }
    }

    /// `RevokeToken`: forget the token named by its key or its name.
    pub(crate) fn revoke_token(&mut self, key_or_name: &str) -> Response {
        let key = match self.tokens.get(key_or_name) {
            Some(t) => t.key.clone(),
            None => match self.tokens.values().find(|t| t.name == key_or_name) {
                Some(t) => t.key.clone(),
                None => {
                    return Response::Rejected(Rejection::new(
                        RejectCode::NotFound,
                        format!("no token with key or name {key_or_name:?}"),
                    ));
                }
            },
        };
        let token = self.tokens.remove(&key).expect("found above");
        Response::TokenRevoked { token }
    }

    /// The token with this key, for authorization.
    pub fn token(&self, key: &str) -> Option<&ApiToken> {
        self.tokens.get(key)
    }

    /// Every token, by key.
    pub fn tokens(&self) -> impl Iterator<Item = &ApiToken> {
        self.tokens.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(key: &str, name: &str, role: Role) -> ApiToken {
        let worker_id = (role == Role::Worker).then(|| "w1".to_string());
        ApiToken { key: key.into(), name: name.into(), role, worker_id, sha256: [7; 32], created_ms: 1 }
    }

    #[test]
    fn roles_include_those_below_and_workers_only_themselves() {
        assert!(Role::Admin.includes(Role::Worker));
        assert!(Role::Operator.includes(Role::Submitter));
        assert!(Role::Submitter.includes(Role::Reader));
        assert!(!Role::Submitter.includes(Role::Operator));
        assert!(!Role::Reader.includes(Role::Submitter));
        assert!(!Role::Worker.includes(Role::Reader));
        assert!(!Role::Operator.includes(Role::Worker));
        assert!(Role::Worker.includes(Role::Worker));
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert!("root".parse::<Role>().unwrap_err().contains("admin, operator"));
    }

    #[test]
    fn tokens_are_created_once_and_revoked_by_key_or_name() {
        let mut s = State::default();
        let t = token("00000000000000aa", "ci", Role::Submitter);
        assert!(matches!(s.create_token(t.clone()), Response::Token { created: true, .. }));
        assert!(matches!(s.create_token(t.clone()), Response::Token { created: false, .. }));
        let mut other = t.clone();
        other.sha256 = [8; 32];
        assert!(matches!(s.create_token(other), Response::Rejected(r) if r.code == RejectCode::IdempotencyMismatch));
        let same_name = token("00000000000000bb", "ci", Role::Reader);
        assert!(
            matches!(s.create_token(same_name), Response::Rejected(r) if r.code == RejectCode::IdempotencyMismatch)
        );
        assert!(matches!(s.revoke_token("ci"), Response::TokenRevoked { .. }));
        assert!(s.token("00000000000000aa").is_none());
        assert!(matches!(s.revoke_token("00000000000000aa"), Response::Rejected(r) if r.code == RejectCode::NotFound));
    }

    #[test]
    fn worker_tokens_need_a_worker_and_others_must_not_have_one() {
        let mut t = token("00000000000000aa", "w", Role::Worker);
        assert!(t.validate().is_ok());
        t.worker_id = None;
        assert_eq!(t.validate().unwrap_err().field, "worker_id");
        let mut r = token("00000000000000aa", "r", Role::Reader);
        r.worker_id = Some("w1".into());
        assert_eq!(r.validate().unwrap_err().field, "worker_id");
        let bad_key = token("xyz", "k", Role::Reader);
        assert_eq!(bad_key.validate().unwrap_err().field, "key");
        let key_like_name = token("00000000000000aa", "00000000000000bb", Role::Reader);
        assert_eq!(key_like_name.validate().unwrap_err().field, "name");
    }
}
