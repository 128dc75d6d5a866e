//! `[metrics]`: the raw schema, its default and its checks (the address, the bearer token
//! file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::Secret;
use crate::settings::{ConfigProblem, Locator, in_range, open_to_others, small_regular_file};

/// `[metrics]`: what an operator watches.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` (Prometheus text), `/health` and `/ready` on this address; off
    /// when absent.
    pub address: Option<Spanned<String>>,
    /// Seconds between the one-line summaries logged at info level; 0 turns them off.
    #[serde(default = "defaults::summary_interval_secs")]
    pub summary_interval_secs: u64,
    /// A file holding the token every path but `/health` then needs
    /// (`Authorization: Bearer <token>`); read once at start.
    pub bearer_token_file: Option<Spanned<PathBuf>>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            address: None,
            summary_interval_secs: defaults::summary_interval_secs(),
            bearer_token_file: None,
        }
    }
}

impl MetricsConfig {
    /// `address`, when set and IP:PORT; otherwise a problem at its value.
    pub fn address(
        &self,
        at: &Locator<'_>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<SocketAddr> {
        self.address
            .as_ref()
            .and_then(|a| match a.get_ref().parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    problems.push(at.problem(
                        Some(a.span()),
                        format!(
                            "metrics address {:?} is not IP:PORT (for example \"127.0.0.1:9464\")",
                            a.get_ref()
                        ),
                    ));
                    None
                }
            })
    }

    /// `summary_interval_secs` out of its range is a problem at its key.
    pub fn check(&self, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) {
        in_range(
            at,
            problems,
            at.section("metrics"),
            "summary_interval_secs",
            self.summary_interval_secs,
            0,
            86_400,
        );
    }

    /// `summary_interval_secs`, unless 0.
    pub fn summary_interval(&self) -> Option<Duration> {
        (self.summary_interval_secs > 0).then(|| Duration::from_secs(self.summary_interval_secs))
    }

    /// The token of `bearer_token_file`, read once: an empty, unreadable or malformed file is
    /// a problem at the key's value. Warns when the endpoint is reachable beyond this host
    /// without a token, and when others can read the file. The token is in no message.
    pub fn bearer_token(
        &self,
        address: Option<SocketAddr>,
        at: &Locator<'_>,
        problems: &mut Vec<ConfigProblem>,
        warnings: &mut Vec<ConfigProblem>,
    ) -> Option<Secret> {
        if let (Some(addr), Some(span), None) = (address, &self.address, &self.bearer_token_file)
            && !addr.ip().is_loopback()
        {
            warnings.push(at.problem(
                Some(span.span()),
                format!(
                    "warning: the metrics endpoint on {addr} can be reached beyond this host and \
                     anyone who reaches it reads /metrics and /ready; set [metrics] \
                     bearer_token_file (and give the scraper the token) or bind 127.0.0.1"
                ),
            ));
        }
        let file = self.bearer_token_file.as_ref()?;
        let path = file.get_ref();
        let problem = |why: String| {
            at.problem(
                Some(file.span()),
                format!("bearer_token_file {}: {why}", path.display()),
            )
        };
        let text = match small_regular_file(path).and_then(|()| std::fs::read_to_string(path)) {
            Ok(text) => text,
            Err(e) => {
                problems.push(problem(format!(
                    "{e}; it must be a readable file holding the token the metrics endpoint asks for"
                )));
                return None;
            }
        };
        let token = text.trim_end_matches(['\n', '\r']);
        if token.is_empty() {
            problems.push(problem(
                "is empty; put the token in it (one line), or remove bearer_token_file".into(),
            ));
            return None;
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(problem(
                "the token must be one line of visible ASCII characters, without spaces (as \
                 `Authorization: Bearer <token>` carries it)"
                    .into(),
            ));
            return None;
        }
        if let Some(mode) = open_to_others(path) {
            warnings.push(at.problem(
                Some(file.span()),
                format!(
                    "warning: {} holds a secret that other users can read (mode {mode:04o}); \
                     chmod 600 it (or 640, group-owned by the service's group)",
                    path.display()
                ),
            ));
        }
        Some(Secret::new(token.to_string()))
    }
}

mod defaults {
    pub fn summary_interval_secs() -> u64 {
        60
    }
}
