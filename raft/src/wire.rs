//! The byte format of Raft RPC bodies: one version byte, then postcard.
//!
//! The version byte lets a future release change the encoding of a message while still
//! recognising (and refusing with a clear error) bodies from an older peer.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::Result;

/// Version of the RPC body format written by this build. 2: log payloads carry their own
/// command format (taskraft 0.2); a peer of another version is refused, so a cluster is
/// upgraded by stopping all replicas, not one at a time.
pub const WIRE_VERSION: u8 = 2;

/// Encodes `value` as `[WIRE_VERSION] ++ postcard(value)`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![WIRE_VERSION];
    postcard::to_io(value, &mut out).map_err(|e| Error::Wire(format!("encode: {e}")))?;
    Ok(out)
}

/// Decodes a body written by [`encode`]; an unknown version byte is an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&WIRE_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| Error::Wire(format!("decode: {e}"))),
        Some((v, _)) => Err(Error::Wire(format!("unsupported body version {v} (this build speaks {WIRE_VERSION})"))),
        None => Err(Error::Wire("empty body".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let bytes = encode(&(7u64, "x".to_string())).unwrap();
        assert_eq!(bytes[0], WIRE_VERSION);
        let back: (u64, String) = decode(&bytes).unwrap();
        assert_eq!(back, (7, "x".into()));
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(decode::<(u64, String)>(&bad).unwrap_err().to_string().contains("version 9"));
        assert!(decode::<(u64, String)>(&[]).is_err());
    }
}
