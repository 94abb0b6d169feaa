//! The HMAC-SHA256 signature most webhook senders use (Shopify,
//! WooCommerce, QuickBooks, Xero): `base64(HMAC-SHA256(key, body))`. The
//! runtime verifies it (`synchub_http::webhook`); this is the signing side,
//! for sandboxes that send webhooks and tests that forge them.

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// `base64(HMAC-SHA256(key, body))`, standard alphabet with padding.
pub fn hmac_sha256_base64(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2: key "Jefe", "what do ya want for nothing?"
        let sig = hmac_sha256_base64(b"Jefe", b"what do ya want for nothing?");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .expect("base64");
        assert_eq!(
            hex::encode(raw),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
