//! `[output]` / `[[output]]`: the raw schema as written, its defaults, which keys each
//! output type takes, and the checks that turn it into the [`OutputSettings`] a sink runs
//! with (reading its secret and PEM files, once).

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::{CertificateSigner, Credential};
use crate::settings::{
    ConfigProblem, Locator, in_range, inside_string, parent_must_exist, read_secret, route,
    small_regular_file, text,
};
use crate::sink::data_collector::RENAMED_TIME_GENERATED;
use crate::sink::signature::SharedKeySigner;
use crate::sink::{DataCollectorSettings, Destination, LogsIngestionSettings, OutputSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to `path`.
    File,
    /// Azure Monitor Logs Ingestion API (data collection rule + stream, OAuth2).
    LogsIngestion,
    /// Azure Monitor HTTP Data Collector API (workspace ID + shared key; retired 2026-09-14).
    DataCollector,
}

impl OutputKind {
    /// The `type` value.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Stdout => "stdout",
            OutputKind::File => "file",
            OutputKind::LogsIngestion => "logs-ingestion",
            OutputKind::DataCollector => "data-collector",
        }
    }
}

/// How the Logs Ingestion output gets its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// App registration: client ID + client secret (client-credentials grant).
    ClientSecret,
    /// Azure VM/VMSS managed identity (IMDS).
    ManagedIdentity,
    /// Workload identity: a federated token file (AKS) exchanged for a token.
    WorkloadIdentity,
    /// An Azure Arc-enabled server's managed identity (the local agent, HIMDS).
    ArcManagedIdentity,
    /// App registration: client ID + certificate (a signed client assertion).
    ClientCertificate,
}

/// `[output]`. A flat table (not a tagged enum) so every field keeps its location; which
/// fields a `type` takes is checked in [`Config::parse`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(rename = "type")]
    pub kind: Spanned<OutputKind>,
    /// The output's name in metrics, logs and folder names; default its type.
    pub name: Option<Spanned<String>>,
    /// A KQL predicate: only rows for which it holds go to this output.
    #[serde(rename = "where")]
    pub predicate: Option<Spanned<String>>,
    /// Columns left out of this output's rows.
    #[serde(default)]
    pub project_away: Vec<Spanned<String>>,
    /// `file`: where rows are appended.
    pub path: Option<Spanned<PathBuf>>,

    /// Azure outputs: the service URL (a data collection endpoint / the DCR's logs
    /// ingestion URL, or `https://<workspace>.ods.opinsights.azure.com`).
    pub endpoint: Option<Spanned<String>>,
    /// Azure outputs: requests in flight at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Azure outputs: time allowed for one request.
    #[serde(default = "defaults::request_timeout_secs")]
    pub timeout_secs: u64,
    /// Azure outputs: the longest wait between retries (the back-off doubles up to it).
    #[serde(default = "defaults::retry_max_secs")]
    pub retry_max_secs: u64,
    /// Azure outputs: largest request body (bytes, uncompressed); default 1 MiB for Logs
    /// Ingestion, 30 MB for Data Collector, which are the services' limits.
    pub max_request_bytes: Option<Spanned<usize>>,
    /// Azure outputs: where rows the service rejects for good are kept, with its error.
    pub dead_letter_path: Option<Spanned<PathBuf>>,

    // Logs Ingestion.
    pub dcr_id: Option<Spanned<String>>,
    /// Input stream for CommonSecurityLog rows; empty turns the CEF route off.
    pub cef_stream: Option<Spanned<String>>,
    /// Input stream for Syslog rows; empty turns the Syslog route off.
    pub syslog_stream: Option<Spanned<String>>,
    #[serde(default = "defaults::gzip")]
    pub gzip: bool,
    pub credential: Option<Spanned<CredentialKind>>,
    pub tenant_id: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub client_secret_env: Option<Spanned<String>>,
    pub client_secret_file: Option<Spanned<PathBuf>>,
    pub authority_host: Option<Spanned<String>>,
    /// Token scope; default `https://monitor.azure.com//.default`.
    pub scope: Option<Spanned<String>>,
    /// Workload identity: the federated token file (default `$AZURE_FEDERATED_TOKEN_FILE`).
    pub federated_token_file: Option<Spanned<PathBuf>>,
    /// Managed identity: the IMDS token URL (default the Azure instance metadata service;
    /// for Azure Arc `$IDENTITY_ENDPOINT`, else the local agent on 127.0.0.1:40342).
    pub managed_identity_endpoint: Option<Spanned<String>>,
    /// Azure Arc: the folder the agent's key files are in (default /var/opt/azcmagent/tokens).
    pub arc_key_folder: Option<Spanned<PathBuf>>,
    /// Client certificate: the PEM certificate registered with the app.
    pub client_certificate_file: Option<Spanned<PathBuf>>,
    /// Client certificate: its RSA private key (PEM, PKCS#8 or PKCS#1).
    pub client_key_file: Option<Spanned<PathBuf>>,

    // Data Collector.
    pub workspace_id: Option<Spanned<String>>,
    pub shared_key_env: Option<Spanned<String>>,
    pub shared_key_file: Option<Spanned<PathBuf>>,
    /// Log type for CommonSecurityLog rows (the table is `<type>_CL`); empty turns it off.
    pub cef_log_type: Option<Spanned<String>>,
    /// Log type for Syslog rows; empty turns it off.
    pub syslog_log_type: Option<Spanned<String>>,
    /// The row field whose value becomes `TimeGenerated`.
    pub time_generated_field: Option<Spanned<String>>,
    pub azure_resource_id: Option<Spanned<String>>,
}

mod defaults {
    pub fn concurrency() -> usize {
        4
    }
    pub fn request_timeout_secs() -> u64 {
        30
    }
    pub fn gzip() -> bool {
        true
    }
    pub fn retry_max_secs() -> u64 {
        60
    }
}

/// An output name: it names a folder and a metric label.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl OutputConfig {
    /// `name`, else the type: in metrics, logs and folder names.
    pub fn name(&self) -> String {
        self.name.as_ref().map_or_else(
            || self.kind.get_ref().name().to_string(),
            |n| n.get_ref().clone(),
        )
    }

    /// The files this output reads.
    pub fn read_paths(&self) -> impl Iterator<Item = &Spanned<PathBuf>> {
        [
            &self.client_secret_file,
            &self.federated_token_file,
            &self.arc_key_folder,
            &self.client_certificate_file,
            &self.client_key_file,
            &self.shared_key_file,
        ]
        .into_iter()
        .flatten()
    }

    /// The files this output writes.
    pub fn written_paths(&self) -> impl Iterator<Item = &Spanned<PathBuf>> {
        [&self.path, &self.dead_letter_path].into_iter().flatten()
    }

    /// The files holding a secret.
    pub fn secret_files(&self) -> impl Iterator<Item = &Spanned<PathBuf>> {
        [
            &self.client_secret_file,
            &self.shared_key_file,
            &self.client_key_file,
        ]
        .into_iter()
        .flatten()
    }

    /// `where` and `project_away`, compiled; a problem at its place for each that is wrong.
    pub fn filters(
        &self,
        at: &Locator<'_>,
        problems: &mut Vec<ConfigProblem>,
    ) -> (Option<crate::filter::Predicate>, crate::filter::ProjectAway) {
        let o = self;
        let filter =
            o.predicate
                .as_ref()
                .and_then(|w| match crate::filter::Predicate::parse(w.get_ref()) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        problems.push(at.problem(
                            Some(inside_string(at.text, w.span(), e.offset)),
                            format!("in `where`: {e}"),
                        ));
                        None
                    }
                });
        let away: Vec<&str> = o
            .project_away
            .iter()
            .map(|c| c.get_ref().as_str())
            .collect();
        let project_away = match crate::filter::ProjectAway::new(&away) {
            Ok(p) => p,
            Err((k, message)) => {
                problems.push(at.problem(
                    Some(o.project_away[k].span()),
                    format!("in `project_away`: {message}"),
                ));
                crate::filter::ProjectAway::default()
            }
        };
        (filter, project_away)
    }

    /// The typed settings of an output that passed [`check`]. This is where its secret and
    /// PEM files are read, once: `check` only looks for them, so a file is never read twice
    /// (and a key rotated between two reads cannot pass the check and fail the start).
    pub fn settings(&self, dead_letter_path: PathBuf) -> Result<OutputSettings, SettingsProblem> {
        let env = |name: &str| std::env::var(name).ok();
        let endpoint = text(&self.endpoint).unwrap_or_default();
        let destination = match self.kind.get_ref() {
            OutputKind::Stdout => Destination::Stdout,
            OutputKind::File => Destination::File(
                self.path
                    .as_ref()
                    .ok_or_else(|| SettingsProblem::new(None, "a file output needs `path`"))?
                    .get_ref()
                    .clone(),
            ),
            OutputKind::LogsIngestion => {
                let authority = || {
                    text(&self.authority_host)
                        .unwrap_or_else(|| "https://login.microsoftonline.com".into())
                };
                let credential = match self
                    .credential
                    .as_ref()
                    .map_or(CredentialKind::ClientSecret, |c| *c.get_ref())
                {
                    CredentialKind::ClientSecret => Credential::ClientSecret {
                        authority_host: authority(),
                        tenant_id: text(&self.tenant_id).unwrap_or_default(),
                        client_id: text(&self.client_id).unwrap_or_default(),
                        secret: read_secret(
                            "client secret",
                            &self.client_secret_env,
                            &self.client_secret_file,
                        )
                        .map_err(|e| {
                            SettingsProblem::new(
                                secret_span(&self.client_secret_env, &self.client_secret_file),
                                e,
                            )
                        })?,
                    },
                    CredentialKind::WorkloadIdentity => Credential::WorkloadIdentity {
                        authority_host: text(&self.authority_host)
                            .or_else(|| env("AZURE_AUTHORITY_HOST"))
                            .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
                        tenant_id: text(&self.tenant_id)
                            .or_else(|| env("AZURE_TENANT_ID"))
                            .unwrap_or_default(),
                        client_id: text(&self.client_id)
                            .or_else(|| env("AZURE_CLIENT_ID"))
                            .unwrap_or_default(),
                        token_file: self
                            .federated_token_file
                            .as_ref()
                            .map(|f| f.get_ref().clone())
                            .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
                            .unwrap_or_default(),
                    },
                    CredentialKind::ClientCertificate => Credential::ClientCertificate {
                        authority_host: authority(),
                        tenant_id: text(&self.tenant_id).unwrap_or_default(),
                        client_id: text(&self.client_id).unwrap_or_default(),
                        signer: match (&self.client_certificate_file, &self.client_key_file) {
                            (Some(cert), Some(key)) => {
                                for f in [cert, key] {
                                    small_regular_file(f.get_ref()).map_err(|e| {
                                        SettingsProblem::new(
                                            Some(f.span()),
                                            format!("{}: {e}", f.get_ref().display()),
                                        )
                                    })?;
                                }
                                CertificateSigner::from_pem_files(cert.get_ref(), key.get_ref())
                                    .map_err(|e| SettingsProblem::new(Some(cert.span()), e))?
                            }
                            _ => {
                                return Err(SettingsProblem::new(
                                    None,
                                    "client-certificate credentials need `client_certificate_file` and `client_key_file`",
                                ));
                            }
                        },
                    },
                    CredentialKind::ArcManagedIdentity => Credential::ArcManagedIdentity {
                        endpoint: text(&self.managed_identity_endpoint)
                            .or_else(|| env("IDENTITY_ENDPOINT"))
                            .unwrap_or_else(|| {
                                "http://127.0.0.1:40342/metadata/identity/oauth2/token".into()
                            }),
                        key_folder: self
                            .arc_key_folder
                            .as_ref()
                            .map(|f| f.get_ref().clone())
                            .unwrap_or_else(|| PathBuf::from("/var/opt/azcmagent/tokens")),
                    },
                    CredentialKind::ManagedIdentity => Credential::ManagedIdentity {
                        endpoint: text(&self.managed_identity_endpoint).unwrap_or_else(|| {
                            "http://169.254.169.254/metadata/identity/oauth2/token".into()
                        }),
                        client_id: text(&self.client_id),
                    },
                };
                Destination::LogsIngestion(LogsIngestionSettings {
                    endpoint,
                    dcr_id: text(&self.dcr_id).unwrap_or_default(),
                    cef_stream: route(&self.cef_stream, "Custom-CefGate_CommonSecurityLog"),
                    syslog_stream: route(&self.syslog_stream, "Custom-CefGate_Syslog"),
                    gzip: self.gzip,
                    credential,
                    scope: text(&self.scope)
                        .unwrap_or_else(|| "https://monitor.azure.com//.default".into()),
                })
            }
            OutputKind::DataCollector => {
                let workspace = text(&self.workspace_id).unwrap_or_default();
                // The message never holds the key.
                let at_key = secret_span(&self.shared_key_env, &self.shared_key_file);
                let key = read_secret("shared key", &self.shared_key_env, &self.shared_key_file)
                    .map_err(|e| SettingsProblem::new(at_key.clone(), e))?;
                let signer = SharedKeySigner::new(&workspace, key.expose())
                    .map_err(|e| SettingsProblem::new(at_key, e.to_string()))?;
                Destination::DataCollector(DataCollectorSettings {
                    endpoint: if endpoint.is_empty() {
                        format!("https://{workspace}.ods.opinsights.azure.com")
                    } else {
                        endpoint
                    },
                    signer,
                    cef_log_type: route(&self.cef_log_type, "CommonSecurityLog"),
                    syslog_log_type: route(&self.syslog_log_type, "Syslog"),
                    time_generated_field: text(&self.time_generated_field)
                        .unwrap_or_else(|| RENAMED_TIME_GENERATED.into()),
                    azure_resource_id: text(&self.azure_resource_id),
                })
            }
        };
        Ok(OutputSettings {
            // As `Config::output_names`: the label of this output's metrics.
            name: self.name(),
            destination,
            concurrency: self.concurrency,
            timeout: Duration::from_secs(self.timeout_secs),
            retry_max: Duration::from_secs(self.retry_max_secs),
            max_request_bytes: self.max_request_bytes.as_ref().map(|m| *m.get_ref()),
            dead_letter_path,
        })
    }
}

/// Why an output's settings could not be made (a secret or PEM file unreadable or
/// malformed), and where in the file the setting is; `None` is the output's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl SettingsProblem {
    fn new(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }
}

/// Where a secret is configured: its `*_env` key, else its `*_file` key.
fn secret_span(
    env: &Option<Spanned<String>>,
    file: &Option<Spanned<PathBuf>>,
) -> Option<Range<usize>> {
    env.as_ref()
        .map(|e| e.span())
        .or(file.as_ref().map(|f| f.span()))
}

/// Keys every Azure output takes.
const AZURE_KEYS: &[&str] = &[
    "endpoint",
    "concurrency",
    "timeout_secs",
    "retry_max_secs",
    "max_request_bytes",
    "dead_letter_path",
];

/// Keys each output type takes (beyond `type`; the one list to extend with a new key), and
/// those it needs.
fn output_keys(kind: OutputKind) -> (Vec<&'static str>, &'static [&'static str]) {
    let with_azure = |own: &[&'static str]| AZURE_KEYS.iter().chain(own).copied().collect();
    match kind {
        OutputKind::Stdout => (vec!["retry_max_secs", "dead_letter_path"], &[]),
        OutputKind::File => (
            vec!["path", "retry_max_secs", "dead_letter_path"],
            &["path"],
        ),
        OutputKind::LogsIngestion => (
            with_azure(&[
                "dcr_id",
                "cef_stream",
                "syslog_stream",
                "gzip",
                "credential",
                "tenant_id",
                "client_id",
                "client_secret_env",
                "client_secret_file",
                "authority_host",
                "scope",
                "federated_token_file",
                "managed_identity_endpoint",
                "arc_key_folder",
                "client_certificate_file",
                "client_key_file",
            ]),
            &["endpoint", "dcr_id"],
        ),
        OutputKind::DataCollector => (
            with_azure(&[
                "workspace_id",
                "shared_key_env",
                "shared_key_file",
                "cef_log_type",
                "syslog_log_type",
                "time_generated_field",
                "azure_resource_id",
            ]),
            &["workspace_id"],
        ),
    }
}

/// The keys written in the `[output]` table, with where each is: read from the text, so that
/// no list of the struct's fields has to be kept.
fn output_keys_present(
    at: &Locator<'_>,
    table: &Range<usize>,
    index: Option<usize>,
) -> Vec<(String, Range<usize>)> {
    let Ok(doc) = at.text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let output = match (doc.get("output"), index) {
        (Some(toml::Value::Array(all)), Some(i)) => all.get(i).and_then(|o| o.as_table()),
        (Some(o), None) => o.as_table(),
        _ => None,
    };
    let Some(output) = output else {
        return Vec::new();
    };
    output
        .keys()
        .filter(|k| *k != "type")
        .map(|k| {
            let span = at.key(Some(table.clone()), k).unwrap_or(table.clone());
            (k.clone(), span)
        })
        .collect()
}

/// Checks one output (the `index`th of several, or the only one): its keys for its type,
/// their values, its name.
pub fn check(
    output: &Spanned<OutputConfig>,
    index: usize,
    several: bool,
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
) {
    let o = output.get_ref();
    if let Some(n) = &o.name
        && !valid_name(n.get_ref())
    {
        problems.push(at.problem(
            Some(n.span()),
            format!(
                "output name {:?} must be 1 to 64 letters, digits, `-` or `_` (it names a folder and a metric label)",
                n.get_ref()
            ),
        ));
    }
    let kind = *o.kind.get_ref();
    let kind_name = kind.name();
    let (mut allowed, required) = output_keys(kind);
    allowed.extend(["name", "where", "project_away"]);
    let present = output_keys_present(at, &output.span(), several.then_some(index));
    for (name, span) in &present {
        if !allowed.contains(&name.as_str()) {
            problems.push(at.problem(
                Some(span.clone()),
                format!("`{name}` does not apply to a {kind_name} output"),
            ));
        }
    }
    for name in required {
        if !present.iter().any(|(n, _)| n == name) {
            problems.push(at.problem(
                Some(output.span()),
                format!("a {kind_name} output needs `{name}`"),
            ));
        }
    }
    for path in [&o.path, &o.dead_letter_path].into_iter().flatten() {
        parent_must_exist(path, at, problems);
    }
    if let Some(endpoint) = &o.endpoint {
        let e = endpoint.get_ref();
        if !(e.starts_with("https://") || e.starts_with("http://")) || e.len() < 10 {
            problems.push(at.problem(
                Some(endpoint.span()),
                format!("endpoint {e:?} is not an http(s) URL"),
            ));
        }
    }
    let table = Some(output.span());
    in_range(
        at,
        problems,
        table.clone(),
        "concurrency",
        o.concurrency as u64,
        1,
        64,
    );
    in_range(
        at,
        problems,
        table.clone(),
        "timeout_secs",
        o.timeout_secs,
        1,
        3600,
    );
    in_range(
        at,
        problems,
        table.clone(),
        "retry_max_secs",
        o.retry_max_secs,
        1,
        3600,
    );
    for path in [&o.path, &o.dead_letter_path].into_iter().flatten() {
        if path.get_ref().is_dir() {
            problems.push(at.problem(
                Some(path.span()),
                format!(
                    "{} is a directory; give a file name",
                    path.get_ref().display()
                ),
            ));
        }
    }
    if let Some(max) = &o.max_request_bytes {
        let limit = if kind == OutputKind::DataCollector {
            super::limits::DATA_COLLECTOR_MAX_REQUEST_BYTES
        } else {
            super::limits::LOGS_INGESTION_MAX_REQUEST_BYTES
        };
        let min = super::limits::MIN_REQUEST_BYTES;
        if *max.get_ref() < min || *max.get_ref() > limit {
            problems.push(at.problem(
                Some(max.span()),
                format!("max_request_bytes must be between {min} and the service's limit, {limit}"),
            ));
        }
    }
    let secret = |env: &Option<Spanned<String>>,
                  file: &Option<Spanned<PathBuf>>,
                  what: &str,
                  problems: &mut Vec<ConfigProblem>| {
        match (env, file) {
            (Some(e), None) => {
                if std::env::var_os(e.get_ref()).is_none() {
                    problems.push(at.problem(
                        Some(e.span()),
                        format!(
                            "environment variable {} (the {what}) is not set",
                            e.get_ref()
                        ),
                    ));
                }
            }
            (None, Some(f)) => {
                if !f.get_ref().is_file() {
                    problems.push(at.problem(
                        Some(f.span()),
                        format!("{what} file {} does not exist", f.get_ref().display()),
                    ));
                }
            }
            (Some(e), Some(_)) => problems.push(at.problem(
                Some(e.span()),
                format!("give the {what} once: an env variable or a file, not both"),
            )),
            (None, None) => problems.push(at.problem(
                Some(output.span()),
                format!(
                    "the {what} is missing: set `{}_env` or `{}_file`",
                    what.replace(' ', "_"),
                    what.replace(' ', "_")
                ),
            )),
        }
    };
    match kind {
        OutputKind::LogsIngestion => {
            let credential = o
                .credential
                .as_ref()
                .map_or(CredentialKind::ClientSecret, |c| *c.get_ref());
            // An app registration names its tenant and itself.
            let app_ids = |kind: &str, problems: &mut Vec<ConfigProblem>| {
                for (name, v) in [("tenant_id", &o.tenant_id), ("client_id", &o.client_id)] {
                    if v.is_none() {
                        problems.push(at.problem(
                            Some(output.span()),
                            format!("{kind} credentials need `{name}`"),
                        ));
                    }
                }
            };
            match credential {
                CredentialKind::ClientSecret => {
                    app_ids("client-secret", problems);
                    secret(
                        &o.client_secret_env,
                        &o.client_secret_file,
                        "client secret",
                        problems,
                    );
                }
                CredentialKind::WorkloadIdentity => {
                    let tenant =
                        o.tenant_id.is_some() || std::env::var_os("AZURE_TENANT_ID").is_some();
                    let client =
                        o.client_id.is_some() || std::env::var_os("AZURE_CLIENT_ID").is_some();
                    let file = o.federated_token_file.is_some()
                        || std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some();
                    if !(tenant && client && file) {
                        problems.push(at.problem(
                            Some(output.span()),
                            "workload identity needs tenant_id, client_id and federated_token_file (or AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)",
                        ));
                    }
                }
                CredentialKind::ClientCertificate => {
                    app_ids("client-certificate", problems);
                    match (&o.client_certificate_file, &o.client_key_file) {
                        // Read (and parsed) once, by `settings`.
                        (Some(_), Some(_)) => {}
                        _ => problems.push(at.problem(
                            Some(output.span()),
                            "client-certificate credentials need `client_certificate_file` and `client_key_file`",
                        )),
                    }
                }
                CredentialKind::ManagedIdentity | CredentialKind::ArcManagedIdentity => {}
            }
            for stream in [&o.cef_stream, &o.syslog_stream].into_iter().flatten() {
                let name = stream.get_ref();
                if !name.is_empty() && !name.starts_with("Custom-") {
                    problems.push(at.problem(Some(stream.span()), format!("stream {name:?} must start with `Custom-` (the DCR's input stream, not `Microsoft-...`)")));
                }
            }
        }
        OutputKind::DataCollector => {
            secret(
                &o.shared_key_env,
                &o.shared_key_file,
                "shared key",
                problems,
            );
            // The key is read and decoded once, by `settings`.
            for log_type in [&o.cef_log_type, &o.syslog_log_type].into_iter().flatten() {
                let name = log_type.get_ref();
                let valid = name.len() <= 100
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !valid {
                    problems.push(at.problem(
                        Some(log_type.span()),
                        format!("log type {name:?} must be letters, digits and `_`, at most 100"),
                    ));
                }
            }
        }
        OutputKind::Stdout | OutputKind::File => {}
    }
}
