//! `/v1/tokens…`: API tokens, and the token string format every party shares.
//!
//! A token string is `trk_<key>_<secret>`: `key` is 16 hex digits (the token's public name,
//! shown by `token list` and used by `token revoke`), `secret` is 43 base64url characters
//! (256 random bits). The cluster keeps only the SHA-256 of the whole string. Clients send it
//! as `Authorization: Bearer trk_…`.

use serde::Deserialize;
use serde::Serialize;
use sha2::Digest;

use crate::scheduler::ApiToken;
use crate::scheduler::Role;
use crate::scheduler::TOKEN_KEY_LEN;

/// Prefix of every token string; lets secret scanners and humans recognise one.
pub const TOKEN_PREFIX: &str = "trk_";
/// Random bytes in a token's secret part.
const SECRET_BYTES: usize = 32;

/// `POST /v1/tokens` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Free text naming the holder, unique in the cluster (`ci`, `worker-1`).
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// For `worker` tokens: the one worker id the token speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

/// A token as listed: everything but the secret, which the cluster does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The token's public key (16 hex digits), as in `trk_<key>_…`.
    pub key: String,
    /// The holder's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The worker a `worker` token speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// When it was created (leader clock, ms since the epoch).
    pub created_ms: u64,
}

impl From<&ApiToken> for TokenInfo {
    fn from(t: &ApiToken) -> Self {
        TokenInfo {
            key: t.key.clone(),
            name: t.name.clone(),
            role: t.role,
            worker_id: t.worker_id.clone(),
            created_ms: t.created_ms,
        }
    }
}

/// Answer of `POST /v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The bearer token. Store it now: the cluster keeps only its hash.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Answer of `GET /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenList {
    /// Every token, by key.
    pub tokens: Vec<TokenInfo>,
}

/// A fresh token string with 256 random bits from the OS.
pub fn generate_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 8 + SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let key: String = bytes[..8].iter().map(|b| format!("{b:02x}")).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[8..]);
    format!("{TOKEN_PREFIX}{key}_{secret}")
}

/// The key of a well-formed token string, or `None`. Never echoes the secret.
pub fn token_key(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (key, secret) = rest.split_once('_')?;
    let key_ok = key.len() == TOKEN_KEY_LEN && key.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = (32..=128).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (key_ok && secret_ok).then_some(key)
}

/// SHA-256 of a token string: what the cluster keeps.
pub fn token_sha256(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The record to commit for a token string the caller generated (or read from a file).
pub fn token_record(token: &str, req: &CreateToken, created_ms: u64) -> Option<ApiToken> {
    Some(ApiToken {
        key: token_key(token)?.to_string(),
        name: req.name.clone(),
        role: req.role,
        worker_id: req.worker_id.clone(),
        sha256: token_sha256(token),
        created_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(token_key(&a).unwrap().len(), 16);
        assert_eq!(a.len(), 4 + 16 + 1 + 43);
        assert_ne!(token_sha256(&a), token_sha256(&b));
    }

    #[test]
    fn malformed_tokens_have_no_key() {
        for bad in [
            "",
            "trk_",
            "trk_0011",
            "abc_0011223344556677_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "trk_zz11223344556677_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "trk_0011223344556677_short",
            "trk_0011223344556677_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa a",
        ] {
            assert_eq!(token_key(bad), None, "{bad}");
        }
    }
}
