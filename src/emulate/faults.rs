//! Injected faults: a share of throttling and server errors with `Retry-After`, latency, an
//! outage window, and failing the first requests.

use super::*;

/// A fault to answer with, if the dice or the outage window say so.
pub(super) fn injected_fault(state: &State, api: &str) -> Option<Reply> {
    let s = &state.settings;
    let n = state
        .ingest_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let forced = n < s.fail_first;
    if let Some(after) = s.outage_after {
        let elapsed = state.started.elapsed();
        if elapsed >= after && elapsed < after + s.outage_for {
            return Some(match api {
                "li" => li_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "outage (emulated)",
                ),
                _ => dc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "outage (emulated)",
                ),
            });
        }
    }
    let dice = s.fault_rate > 0.0 && fastrand::f64() < s.fault_rate;
    if (forced || dice) && !s.fault_statuses.is_empty() {
        let status = if forced {
            s.fault_statuses[0]
        } else {
            s.fault_statuses[fastrand::usize(..s.fault_statuses.len())]
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = match api {
            "li" => li_error(status, "InjectedFault", "fault injected by cefgate emulate"),
            _ => dc_error(status, "InjectedFault", "fault injected by cefgate emulate"),
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            let value = format!("{}", s.retry_after_secs);
            r.headers_mut()
                .insert("retry-after", value.parse().expect("number"));
        }
        return Some(r);
    }
    None
}

// The error is the HTTP answer itself, built once per refused request: boxing it gains nothing.
