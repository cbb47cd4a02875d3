//! Stable pseudonyms for personal values (users, IPs) used as label values.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Maps a value to the first 16 hex characters (64 bits) of HMAC-SHA256(key, value): stable
/// for a key across restarts, not reversible without the key.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl Pseudonymiser {
    pub fn new(key: &[u8]) -> Self {
        Pseudonymiser {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        hex::encode(&out[..8])
    }
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<key>)")
    }
}
