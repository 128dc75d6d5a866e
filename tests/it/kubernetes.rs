//! The Kubernetes manifests in deploy/kubernetes, checked at the level kubeconform would
//! (kubeconform cannot be installed from the registries here): every object is well formed,
//! the references between them hold (selectors, ports, volumes, secrets, probes), the pods
//! run as non-root with limits, and the configuration they carry is one `cefgate check`
//! accepts.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use serde_norway::Value;

fn documents() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    docs
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| s(d, "kind") == kind).collect()
}

fn seq(v: &Value) -> &Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
}

#[test]
fn every_object_is_well_formed() {
    let docs = documents();
    assert!(docs.len() >= 6, "{} objects", docs.len());
    let api = |kind: &str| match kind {
        "StatefulSet" => "apps/v1",
        "Job" => "batch/v1",
        "Service" | "ConfigMap" | "Secret" => "v1",
        other => panic!("unexpected kind {other}"),
    };
    for d in &docs {
        let kind = s(d, "kind");
        assert_eq!(s(d, "apiVersion"), api(kind), "{kind}");
        let name = s(d, "metadata.name");
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name} is not a DNS label"
        );
    }
}

#[test]
fn the_statefulset_keeps_a_spool_per_pod_and_probes_health() {
    let docs = documents();
    let sts = of_kind(&docs, "StatefulSet")[0];
    let spec = get(sts, "spec");
    let template = get(spec, "template");
    // The selector selects the pods.
    let labels = get(template, "metadata.labels").as_mapping().unwrap();
    for (k, v) in get(spec, "selector.matchLabels").as_mapping().unwrap() {
        assert_eq!(labels.get(k), Some(v), "selector {k:?}");
    }
    // The governing Service exists and is headless.
    let governing = s(spec, "serviceName");
    let services = of_kind(&docs, "Service");
    let headless = services
        .iter()
        .find(|sv| s(sv, "metadata.name") == governing)
        .expect("the serviceName Service");
    assert_eq!(s(headless, "spec.clusterIP"), "None");
    // Volumes: every mount is a volume or a claim template; the spool is a claim.
    let pod = get(template, "spec");
    let mut volumes: HashSet<&str> = seq(get(pod, "volumes"))
        .iter()
        .map(|v| s(v, "name"))
        .collect();
    let claims: Vec<&str> = seq(get(spec, "volumeClaimTemplates"))
        .iter()
        .map(|c| s(c, "metadata.name"))
        .collect();
    assert!(claims.contains(&"spool"));
    volumes.extend(&claims);
    let container = &seq(get(pod, "containers"))[0];
    for m in seq(get(container, "volumeMounts")) {
        assert!(volumes.contains(s(m, "name")), "mount {}", s(m, "name"));
    }
    let spool_mount = seq(get(container, "volumeMounts"))
        .iter()
        .find(|m| s(m, "name") == "spool")
        .unwrap();
    assert_eq!(s(spool_mount, "mountPath"), "/var/lib/cefgate");
    // Probes on /health and /ready, on a declared port.
    let ports: Vec<&str> = seq(get(container, "ports"))
        .iter()
        .map(|p| s(p, "name"))
        .collect();
    for p in &ports {
        assert!(p.len() <= 15, "port name {p} is longer than 15 characters");
    }
    assert_eq!(s(container, "livenessProbe.httpGet.path"), "/health");
    assert_eq!(s(container, "readinessProbe.httpGet.path"), "/ready");
    for probe in ["livenessProbe", "readinessProbe"] {
        let port = s(container, &format!("{probe}.httpGet.port"));
        assert!(ports.contains(&port), "{probe} port {port}");
    }
    // Non-root, no privilege, limits set.
    assert_eq!(
        get(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_eq!(
        get(container, "securityContext.allowPrivilegeEscalation").as_bool(),
        Some(false)
    );
    for what in [
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ] {
        assert!(
            !get(container, &format!("resources.{what}")).is_null(),
            "{what}"
        );
    }
    // Secrets referenced exist with the key.
    let secrets = of_kind(&docs, "Secret");
    for env in seq(get(container, "env")) {
        let r = get(env, "valueFrom.secretKeyRef");
        let secret = secrets
            .iter()
            .find(|x| s(x, "metadata.name") == s(r, "name"))
            .expect("the referenced Secret");
        assert!(!get(secret, &format!("stringData.{}", s(r, "key"))).is_null());
    }
    // The grace period outlasts the configured delivery time after SIGTERM.
    let grace = get(pod, "terminationGracePeriodSeconds").as_u64().unwrap();
    assert!(grace > 60, "terminationGracePeriodSeconds {grace}");
}

#[test]
fn the_services_reach_declared_ports_and_keep_udp_senders() {
    let docs = documents();
    let sts = of_kind(&docs, "StatefulSet")[0];
    let container = &seq(get(sts, "spec.template.spec.containers"))[0];
    let ports: Vec<(&str, &str)> = seq(get(container, "ports"))
        .iter()
        .map(|p| (s(p, "name"), s(p, "protocol")))
        .collect();
    let labels = get(sts, "spec.template.metadata.labels")
        .as_mapping()
        .unwrap();
    let mut udp = false;
    for service in of_kind(&docs, "Service") {
        for (k, v) in get(service, "spec.selector").as_mapping().unwrap() {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{} selector",
                s(service, "metadata.name")
            );
        }
        for port in seq(get(service, "spec.ports")) {
            let target = (s(port, "targetPort"), s(port, "protocol"));
            assert!(ports.contains(&target), "target {target:?}");
            if target.1 == "UDP" {
                udp = true;
                assert_eq!(s(service, "spec.externalTrafficPolicy"), "Local");
            }
        }
    }
    assert!(udp, "a Service for UDP 514");
}

#[test]
fn the_drain_job_mounts_a_pods_claim_and_drains_it() {
    let docs = documents();
    let job = of_kind(&docs, "Job")[0];
    let pod = get(job, "spec.template.spec");
    let claim = seq(get(pod, "volumes"))
        .iter()
        .find_map(|v| get(v, "persistentVolumeClaim.claimName").as_str())
        .expect("a claim");
    assert!(claim.starts_with("spool-cefgate-"), "{claim}");
    let args: Vec<&str> = seq(get(&seq(get(pod, "containers"))[0], "args"))
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["spool", "drain"]);
    assert_eq!(
        get(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
}

#[test]
fn the_configuration_in_the_configmap_is_valid() {
    let docs = documents();
    let map = of_kind(&docs, "ConfigMap")[0];
    let toml = get(map, "data")["cefgate.toml"]
        .as_str()
        .expect("cefgate.toml in the ConfigMap");
    // Stand-ins for what the pod mounts: the TLS Secret and the spool volume.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["cefgate".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let toml = toml
        .replace("/etc/cefgate/tls", &dir.path().display().to_string())
        .replace("/var/lib/cefgate", &dir.path().display().to_string());
    let path = dir.path().join("cefgate.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .arg("check")
        .arg(&path)
        .env("CEFGATE_CLIENT_SECRET", "x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
