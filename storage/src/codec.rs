//! Versioned value encoding and log-index keys.
//!
//! Every value this crate persists is `[version] ++ postcard(value)`. The version byte comes first
//! so that a future format can be recognised — and an unknown one refused — before a single field
//! is interpreted. Decoding is strict: a missing or unknown version byte, a postcard error, or
//! trailing bytes after the value are all errors, never a default.
//!
//! Two versions are in use:
//! - [`FORMAT_VERSION`] (1) for the log store's own records (vote, committed, last purged);
//! - [`ENTRY_FORMAT`] (2) for log entries. Format 2 entries have the same layout as format 1;
//!   the number records that the application payload inside carries its own format version, so
//!   it can evolve. Format 1 entries were written before that and are handed to the
//!   application's upgrade function (see [`crate::LogStore::with_upgrade`]).
//!
//! Log keys are the entry index as a big-endian `u64`, so the engine's byte order is index order.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::error::Result;

/// The version byte written in front of every record that is not a log entry. Bump only together
/// with a decoder that still reads every older version.
pub const FORMAT_VERSION: u8 = 1;

/// The version byte written in front of every log entry (see the module docs).
pub const ENTRY_FORMAT: u8 = 2;

/// Log entries written before application payloads carried a format version of their own.
pub const LEGACY_ENTRY_FORMAT: u8 = 1;

/// Encode `value` as `[FORMAT_VERSION] ++ postcard(value)`. `what` names the value in errors.
pub fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    encode_as(FORMAT_VERSION, what, value)
}

/// Encode a log entry as the log store writes it: `[ENTRY_FORMAT] ++ postcard(entry)`.
pub fn encode_entry<T: Serialize + ?Sized>(entry: &T) -> Result<Vec<u8>> {
    encode_as(ENTRY_FORMAT, "raft log entry", entry)
}

/// Encode `value` as `[version] ++ postcard(value)`.
pub fn encode_as<T: Serialize + ?Sized>(version: u8, what: &'static str, value: &T) -> Result<Vec<u8>> {
    // One allocation in the common case: small values fit, large ones grow geometrically.
    let mut buf = Vec::with_capacity(64);
    buf.push(version);
    postcard::to_extend(value, buf).map_err(|source| Error::Encode { what, source })
}

/// Decode a value written by [`encode`]. `what` names the value in errors.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    let (version, body) = split_version(what, bytes)?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { what, found: version, expected: FORMAT_VERSION });
    }
    decode_body(what, body)
}

/// The version byte of a stored value and the bytes after it.
pub fn split_version<'a>(what: &'static str, bytes: &'a [u8]) -> Result<(u8, &'a [u8])> {
    match bytes.split_first() {
        Some((&version, body)) => Ok((version, body)),
        None => Err(Error::corrupt(what, "empty value, no version byte")),
    }
}

/// Decode the postcard `body` of a value whose version byte was already checked; trailing bytes
/// are an error.
pub fn decode_body<T: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<T> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(|source| Error::Decode { what, source })?;
    if !rest.is_empty() {
        return Err(Error::corrupt(what, format!("{} trailing bytes after the value", rest.len())));
    }
    Ok(value)
}

/// The engine key of the log entry at `index`.
pub fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Parse a key written by [`index_key`].
pub(crate) fn parse_index_key(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| Error::corrupt("raft log key", format!("expected 8 bytes, found {}", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode("pair", &(7u64, "seven".to_string())).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode("pair", &bytes).unwrap();
        assert_eq!(back, (7, "seven".to_string()));
    }

    #[test]
    fn rejects_empty_unknown_version_and_trailing_bytes() {
        assert!(matches!(decode::<u64>("x", &[]), Err(Error::Corrupt { .. })));
        assert!(matches!(decode::<u64>("x", &[9, 1]), Err(Error::UnsupportedVersion { found: 9, .. })));
        let mut bytes = encode("x", &5u64).unwrap();
        bytes.push(0);
        assert!(matches!(decode::<u64>("x", &bytes), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn index_keys_sort_like_indexes() {
        let mut keys: Vec<[u8; 8]> = [300u64, 1, u64::MAX, 256, 0].iter().map(|i| index_key(*i)).collect();
        keys.sort();
        let indexes: Vec<u64> = keys.iter().map(|k| parse_index_key(k).unwrap()).collect();
        assert_eq!(indexes, vec![0, 1, 256, 300, u64::MAX]);
        assert!(parse_index_key(&[1, 2, 3]).is_err());
    }
}
