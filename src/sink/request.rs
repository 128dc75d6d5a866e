//! What both Azure APIs share about a request: its ID and reading a failed answer. (Values
//! longer than a service keeps are cut when the row is written: `row::JsonShape`.)

use super::retry::parse_retry_after;

/// A random (version 4) UUID for `x-ms-client-request-id`, the form the services expect, so
/// both sides can find a request.
pub fn request_id() -> String {
    let mut b: [u8; 16] = fastrand::u128(..).to_le_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// Counts `response` for `/metrics` by output, route, status and `x-ms-error-code`.
pub fn count_response(
    metrics: &crate::metrics::Metrics,
    output: &str,
    route: &str,
    response: &reqwest::Response,
) {
    let error_code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok());
    metrics.record_response(output, route, response.status().as_u16(), error_code);
}

/// What a failed response says: `HTTP <status> (<service ids>): <start of the body>`, and its
/// `Retry-After`, if any. Shared by both APIs.
pub async fn failure(response: reqwest::Response) -> (String, Option<std::time::Duration>) {
    let status = response.status().as_u16();
    let ids = service_ids(&response);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text = response.text().await.unwrap_or_default();
    let detail = format!(
        "HTTP {status} ({ids}): {}",
        text.chars().take(500).collect::<String>()
    );
    (detail, retry_after)
}

/// `x-ms-request-id` and `x-ms-error-code` of a response, for the log.
pub fn service_ids(response: &reqwest::Response) -> String {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    format!(
        "x-ms-request-id {}, x-ms-error-code {}",
        header("x-ms-request-id"),
        header("x-ms-error-code")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = request_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(request_id(), id);
    }
}
