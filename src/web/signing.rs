//! Signed values for cookies the server must be able to trust without a row per
//! visitor: a value travels as `value.signature`, where the signature is an HMAC-SHA256
//! under a key kept in the database (see `migrations/*/0007_server_keys.sql`), so every
//! process on that database, before and after a restart, accepts what another signed.
//!
//! Each use names its `purpose`, which is part of what is signed: a value signed for one
//! cookie is never accepted as another.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::store::{SharedStore, StoreResult};

/// The `server_keys` row this signer's key lives in.
const KEY_PURPOSE: &str = "cookies";

/// Signs and checks values with the server's cookie key.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { key: <hidden> }")
    }
}

impl Signer {
    /// The signer over the stored key, creating the key on first use.
    ///
    /// # Errors
    /// When the store cannot be read or written.
    pub async fn load(store: &SharedStore, now: DateTime<Utc>) -> StoreResult<Self> {
        let fresh: [u8; 32] = rand::random();
        let key = store.server_key(KEY_PURPOSE, &fresh, now).await?;
        Ok(Self::from_key(&key))
    }

    /// A signer over `key` (tests, and [`Signer::load`]).
    pub fn from_key(key: &[u8]) -> Self {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        Self { mac }
    }

    /// `value.signature` for `purpose`. `value` must not contain a `.` after which the
    /// rest could be mistaken for the signature; [`Signer::verify`] splits at the last one.
    pub fn sign(&self, purpose: &str, value: &str) -> String {
        format!("{value}.{}", self.signature(purpose, value))
    }

    /// The value of `signed` when its signature for `purpose` is right.
    pub fn verify<'a>(&self, purpose: &str, signed: &'a str) -> Option<&'a str> {
        let (value, signature) = signed.rsplit_once('.')?;
        let expected = self.signature(purpose, value);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes())).then_some(value)
    }

    fn signature(&self, purpose: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        // The purpose's length first, so no (purpose, value) pair can be rearranged into
        // another that signs the same bytes.
        mac.update(&(purpose.len() as u64).to_be_bytes());
        mac.update(purpose.as_bytes());
        mac.update(value.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Signer;

    #[test]
    fn a_signed_value_verifies_for_its_purpose_only() {
        let signer = Signer::from_key(b"0123456789abcdef0123456789abcdef");
        let signed = signer.sign("device", "ann.1700000000");
        assert_eq!(signer.verify("device", &signed), Some("ann.1700000000"));
        assert_eq!(signer.verify("login-csrf", &signed), None);
    }

    #[test]
    fn a_changed_value_signature_or_key_is_refused() {
        let signer = Signer::from_key(b"0123456789abcdef0123456789abcdef");
        let signed = signer.sign("device", "ann");
        assert_eq!(signer.verify("device", &signed.replace("ann", "bob")), None);
        let mut forged = signed.clone();
        forged.pop();
        forged.push('0');
        assert_eq!(signer.verify("device", &forged), None);
        assert_eq!(signer.verify("device", "ann"), None);
        let other = Signer::from_key(b"another key, also 32 bytes long!");
        assert_eq!(other.verify("device", &signed), None);
    }
}
