//! The phone key: the per-deployment secret that turns a patient's number into the key
//! sessions, the notifier and the replies stage find each other by (never the number).

use hmac::{Hmac, Mac};

/// The per-deployment secret that turns a phone number into a key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneKey(Vec<u8>);

impl PhoneKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(secret.to_vec())
    }

    /// The number's key: 32 hex characters of HMAC-SHA256(secret, E.164 number).
    pub fn digest(&self, e164: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(e164.trim().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for PhoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneKey(<secret>)")
    }
}
