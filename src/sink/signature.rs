//! The Data Collector API's SharedKey signature.
//!
//! `Authorization: SharedKey <workspace>:<base64(HMAC-SHA256(base64decode(key), string))>`,
//! where the signed string is
//! `POST\n<body length in bytes>\napplication/json\nx-ms-date:<date>\n/api/logs`.
//! The length is the UTF-8 byte count of the body actually sent (a character count breaks
//! on the first non-ASCII value), and the date is IMF-fixdate with a zero-padded day.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a shared key cannot be used. Never carries the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the shared key is not valid base64 (copy the workspace's primary or secondary key as shown)"
    )]
    NotBase64,
    #[error("the shared key is empty")]
    Empty,
}

/// Signs Data Collector requests for one workspace. Holds the decoded key; its `Debug`
/// output hides it. Compared by workspace and key (a rotated key is a change).
#[derive(Clone, PartialEq)]
pub struct SharedKeySigner {
    workspace_id: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for SharedKeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeySigner")
            .field("workspace_id", &self.workspace_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SharedKeySigner {
    pub fn new(workspace_id: &str, base64_key: &str) -> Result<Self, KeyError> {
        let key = STANDARD
            .decode(base64_key.trim())
            .map_err(|_| KeyError::NotBase64)?;
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self {
            workspace_id: workspace_id.to_string(),
            key,
        })
    }

    /// The string that is signed for a body of `content_length` bytes sent at `date`.
    pub fn string_to_sign(content_length: usize, date: &str) -> String {
        format!("POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs")
    }

    /// Base64 HMAC-SHA256 of `string_to_sign`.
    pub fn signature(&self, string_to_sign: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(string_to_sign.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// The `Authorization` header value for `body` sent at `date`.
    pub fn authorization(&self, body: &[u8], date: &str) -> String {
        let sig = self.signature(&Self::string_to_sign(body.len(), date));
        format!("SharedKey {}:{sig}", self.workspace_id)
    }

    /// Checks a received `Authorization` header (used by `cefgate emulate`).
    pub fn verify(&self, authorization: &str, body: &[u8], date: &str) -> bool {
        let expected = self.authorization(body, date);
        // Constant-time comparison of the signatures.
        let (a, b) = (expected.as_bytes(), authorization.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// `Thu, 26 Nov 2026 10:00:00 GMT` (IMF-fixdate).
pub fn imf_fixdate(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test key of the fact sheet: bytes 0x00..0x3f.
    const KEY: &str =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

    #[test]
    fn vector_a_microsoft_example_string() {
        let s = SharedKeySigner::new("ws", KEY).unwrap();
        let string =
            "POST\n1024\napplication/json\nx-ms-date:Mon, 04 Apr 2016 08:00:00 GMT\n/api/logs";
        assert_eq!(
            SharedKeySigner::string_to_sign(1024, "Mon, 04 Apr 2016 08:00:00 GMT"),
            string
        );
        assert_eq!(
            s.signature(string),
            "kQfMluP3yBFQzfwH0Ye5adOjNq2FCEIWGh0n4uEtCrg="
        );
    }

    #[test]
    fn vector_b_non_ascii_body_signs_its_byte_length() {
        let s = SharedKeySigner::new("00000000-0000-0000-0000-000000000000", KEY).unwrap();
        let body = "[{\"Computer\":\"fw01\",\"Message\":\"café\"}]";
        assert_eq!(body.chars().count(), 38);
        assert_eq!(body.len(), 39);
        let date = "Thu, 26 Nov 2026 10:00:00 GMT";
        assert_eq!(
            s.authorization(body.as_bytes(), date),
            "SharedKey 00000000-0000-0000-0000-000000000000:3ENYapY7BTm5yowB7E1cuQrRiiBfx7N8sJIRMO6Qv6k="
        );
        // What a character-counting client would send, and the emulator must refuse.
        let wrong = s.signature(&SharedKeySigner::string_to_sign(38, date));
        assert_eq!(wrong, "IBjGYvUrt7LCkoiumCH+k1VdkVIHYjeW4KrTFLY+8Oc=");
        assert!(!s.verify(
            &format!("SharedKey 00000000-0000-0000-0000-000000000000:{wrong}"),
            body.as_bytes(),
            date
        ));
        assert!(s.verify(
            &s.authorization(body.as_bytes(), date),
            body.as_bytes(),
            date
        ));
    }

    #[test]
    fn dates_are_imf_fixdate_with_a_padded_day() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_459_756_800); // 2016-04-04
        assert_eq!(imf_fixdate(t), "Mon, 04 Apr 2016 08:00:00 GMT");
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let err = SharedKeySigner::new("ws", "not base64 !!").unwrap_err();
        assert!(!err.to_string().contains("not base64 !!"));
        let debug = format!("{:?}", SharedKeySigner::new("ws", KEY).unwrap());
        assert!(!debug.contains(KEY) && debug.contains("redacted"));
    }
}
