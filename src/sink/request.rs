//! What both Azure APIs share about a request: its ID, reading a failed answer, and cutting
//! values longer than the service keeps (it would cut them without a word).

use super::retry::parse_retry_after;

/// Appended to a value cut at a service's limit.
pub const TRUNCATION_MARKER: &str = "...[truncated by cefgate]";

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

/// Writes `row` to `out` with every string value longer than `max` bytes cut to `max` (the
/// marker included) and counted in `truncated`, and `TimeGenerated` renamed when asked.
/// Returns `false`, writing nothing, when no value can be that long (the row is shorter), so
/// the caller copies the row as it is: the common case costs one length check.
pub fn cut_long_values(
    row: &[u8],
    max: usize,
    rename_time_generated: Option<&str>,
    out: &mut Vec<u8>,
    truncated: &mut u64,
) -> bool {
    if row.len() <= max {
        return false;
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice::<serde_json::Value>(row)
    else {
        return false;
    };
    for value in map.values_mut() {
        if let serde_json::Value::String(s) = value
            && s.len() > max
        {
            let mut cut = max - TRUNCATION_MARKER.len();
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str(TRUNCATION_MARKER);
            *truncated += 1;
        }
    }
    if let Some(name) = rename_time_generated
        && let Some(t) = map.remove("TimeGenerated")
    {
        map.insert(name.into(), t);
    }
    serde_json::to_writer(out, &map).expect("writing to memory");
    true
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

    #[test]
    fn long_values_are_cut_with_the_marker_and_short_rows_left_alone() {
        let long = "é".repeat(40_000); // 80,000 bytes
        let row = format!("{{\"TimeGenerated\":\"t\",\"Message\":\"{long}\",\"Port\":1}}");
        let (mut out, mut n) = (Vec::new(), 0);
        assert!(cut_long_values(
            row.as_bytes(),
            65_536,
            None,
            &mut out,
            &mut n
        ));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let m = v["Message"].as_str().unwrap();
        assert!(
            m.len() <= 65_536 && m.ends_with(TRUNCATION_MARKER),
            "{}",
            m.len()
        );
        assert_eq!(
            (n, v["Port"].as_i64(), v["TimeGenerated"].as_str()),
            (1, Some(1), Some("t"))
        );
        let short = br#"{"Message":"x"}"#;
        assert!(!cut_long_values(short, 65_536, None, &mut out, &mut n));
    }
}
