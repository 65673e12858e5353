//! Key values and webhook secrets: generation, hashing and constant-time checks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every virtual key value.
pub const KEY_PREFIX: &str = "condt_";

/// A new virtual key value: `condt_` and 43 base64url characters (32 random bytes).
pub fn generate_key() -> String {
    format!("{KEY_PREFIX}{}", crate::ids::random_token(32))
}

/// A new master key; distinct prefix so it is never mistaken for a virtual key.
pub fn generate_master_key() -> String {
    format!("condt_master_{}", crate::ids::random_token(32))
}

/// A new webhook signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_webhook_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// SHA-256 of a key value: what the store keeps and looks keys up by.
pub fn hash_key(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Whether `value` has the shape of a virtual key (`condt_` + 43 base64url).
pub fn is_well_formed_key(value: &str) -> bool {
    value.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Hash first so that the comparison does not even leak the length.
    let a = Sha256::digest(a);
    let b = Sha256::digest(b);
    a.ct_eq(&b).into()
}

/// The first characters of a key, safe to show and to log.
pub fn display_prefix(value: &str) -> String {
    value.chars().take(KEY_PREFIX.len() + 4).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_the_documented_shape() {
        let key = generate_key();
        assert!(is_well_formed_key(&key), "{key}");
        assert!(!is_well_formed_key("condt_short"));
        assert!(!is_well_formed_key(&format!("sk_{}", &key[6..])));
        let secret = generate_webhook_secret();
        let raw = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn comparison_and_hash() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert_eq!(hash_key("x"), hash_key("x"));
        assert_ne!(hash_key("x"), hash_key("y"));
    }
}
