//! Every manifest in `deploy/` parses and says what the docs promise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every manifest by kind.
fn manifests() -> BTreeMap<String, Value> {
    let mut by_kind = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(deploy_dir().join("k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let manifest: Value = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|error| panic!("{} does not parse: {error}", file.display()));
        let kind = manifest["kind"].as_str().unwrap().to_owned();
        assert!(
            manifest["apiVersion"].as_str().is_some(),
            "{kind} has no apiVersion"
        );
        if kind == "Namespace" {
            assert_eq!(manifest["metadata"]["name"], NAMESPACE);
        } else {
            assert_eq!(manifest["metadata"]["name"], "modulink-example", "{kind}");
            assert_eq!(manifest["metadata"]["namespace"], NAMESPACE, "{kind}");
        }
        by_kind.insert(kind, manifest);
    }
    by_kind
}

/// The namespace every resource lives in.
const NAMESPACE: &str = "modulink";

/// `kubernetes-validate` (PyPI), which carries the Kubernetes JSON schemas
/// and so validates offline: `$KUBERNETES_VALIDATE`, the virtualenv
/// `scripts/test.sh` installs it into, or the one on `PATH`.
fn kubernetes_validate() -> Command {
    if let Ok(path) = std::env::var("KUBERNETES_VALIDATE") {
        return Command::new(path);
    }
    let venv = deploy_dir().join("../target/k8s-venv/bin/kubernetes-validate");
    if venv.exists() {
        return Command::new(venv);
    }
    Command::new("kubernetes-validate")
}

/// Validates `files` against the schemas, strictly (unknown fields are
/// errors): whether they pass, and what the validator said.
fn validate(files: &[PathBuf]) -> (bool, String) {
    let output = kubernetes_validate()
        .args(["--strict", "--quiet"])
        .args(files)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run kubernetes-validate ({error}): install it with \
                 `python3 -m venv target/k8s-venv && target/k8s-venv/bin/pip install \
                 kubernetes-validate`, as scripts/test.sh does"
            )
        });
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("k8s"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let (passed, said) = validate(&files);
    assert!(passed, "{said}");

    // The check catches a mistake: a misspelt field, a wrong type.
    let broken = std::env::temp_dir().join(format!("broken-{}.yaml", std::process::id()));
    let deployment = std::fs::read_to_string(deploy_dir().join("k8s/deployment.yaml")).unwrap();
    for (from, to) in [
        ("readinessProbe:", "readynessProbe:"),
        ("replicas: 3", "replicas: three"),
    ] {
        assert!(deployment.contains(from));
        std::fs::write(&broken, deployment.replacen(from, to, 1)).unwrap();
        let (passed, said) = validate(std::slice::from_ref(&broken));
        assert!(!passed, "`{to}` passed: {said}");
    }
    std::fs::remove_file(&broken).unwrap();
}

#[test]
fn the_pod_is_scraped_configured_and_given_its_secret_and_account() {
    let manifests = manifests();
    let template = &manifests["Deployment"]["spec"]["template"];
    let pod = &template["spec"];
    let container = &pod["containers"][0];

    // Prometheus scrapes the container's own port at the path the service
    // serves (examples/tests/deploy_service.rs reads it there).
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        annotations["prometheus.io/port"].as_str().unwrap(),
        container["ports"][0]["containerPort"]
            .as_u64()
            .unwrap()
            .to_string()
    );

    assert_eq!(
        pod["serviceAccountName"],
        manifests["ServiceAccount"]["metadata"]["name"]
    );
    assert_eq!(
        manifests["ServiceAccount"]["automountServiceAccountToken"],
        false
    );

    let env = |name: &str| {
        container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|var| var["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .clone()
    };
    // The key comes from a Secret, never from a value in the manifest.
    let api_key = env("API_KEY");
    assert!(api_key.get("value").is_none());
    assert_eq!(
        api_key["valueFrom"]["secretKeyRef"]["key"].as_str(),
        Some("api-key")
    );

    // The ConfigMap is mounted where CONFIG_FILE points, holds that file,
    // and its drain fits in the grace period.
    let volume = &pod["volumes"][0];
    assert_eq!(
        volume["configMap"]["name"],
        manifests["ConfigMap"]["metadata"]["name"]
    );
    let mount = &container["volumeMounts"][0];
    assert_eq!(mount["name"], volume["name"]);
    assert_eq!(mount["readOnly"], true);
    let config_file = env("CONFIG_FILE")["value"].as_str().unwrap().to_owned();
    let (dir, file) = config_file.rsplit_once('/').unwrap();
    assert_eq!(mount["mountPath"].as_str(), Some(dir));
    let config: serde_json::Value =
        serde_json::from_str(manifests["ConfigMap"]["data"][file].as_str().unwrap()).unwrap();
    assert!(
        config["drain_seconds"].as_f64().unwrap()
            < pod["terminationGracePeriodSeconds"].as_f64().unwrap()
    );
}

#[test]
fn the_ingress_terminates_tls_and_limits_the_rate() {
    let manifests = manifests();
    let ingress = &manifests["Ingress"];
    let host = &ingress["spec"]["rules"][0]["host"];
    let tls = &ingress["spec"]["tls"][0];
    assert!(tls["hosts"].as_sequence().unwrap().contains(host));
    assert!(tls["secretName"].as_str().is_some());
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/ssl-redirect"],
        "true"
    );
    let rps: u32 = annotations["nginx.ingress.kubernetes.io/limit-rps"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rps > 0);
    assert!(
        annotations["cert-manager.io/cluster-issuer"]
            .as_str()
            .is_some()
    );
}

#[test]
fn the_deployment_probes_the_health_endpoints_and_runs_unprivileged() {
    let manifests = manifests();
    let deployment = &manifests["Deployment"];
    let spec = &deployment["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(spec["selector"]["matchLabels"], *labels);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    let container = &pod["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        "/health/live"
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/health/ready"
    );
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert!(
        container["resources"]["limits"]["memory"]
            .as_str()
            .is_some()
    );
    // The grace period outlasts the service's 5 s drain.
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 5);
}

#[test]
fn service_ingress_autoscaler_and_budget_point_at_the_deployment() {
    let manifests = manifests();
    let labels = &manifests["Deployment"]["spec"]["template"]["metadata"]["labels"];
    let service = &manifests["Service"]["spec"];
    for (key, value) in service["selector"].as_mapping().unwrap() {
        assert_eq!(labels[key.as_str().unwrap()], *value);
    }
    assert_eq!(service["ports"][0]["targetPort"], "http");

    let backend =
        &manifests["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], manifests["Service"]["metadata"]["name"]);
    assert_eq!(backend["port"]["name"], "http");

    let hpa = &manifests["HorizontalPodAutoscaler"]["spec"];
    assert_eq!(hpa["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["scaleTargetRef"]["name"], "modulink-example");
    assert!(hpa["minReplicas"].as_u64() <= hpa["maxReplicas"].as_u64());

    let pdb = &manifests["PodDisruptionBudget"]["spec"];
    assert!(pdb["minAvailable"].as_u64().unwrap() < hpa["minReplicas"].as_u64().unwrap());
    assert_eq!(pdb["selector"]["matchLabels"], *labels);
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_user_with_a_healthcheck() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let from: Vec<_> = instructions
        .iter()
        .filter(|line| line.starts_with("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage");
    assert!(from[0].ends_with(" AS build"));
    let user = instructions
        .iter()
        .find(|line| line.starts_with("USER "))
        .unwrap();
    assert!(!user.contains("root") && !user.ends_with(" 0"), "{user}");
    assert!(
        instructions
            .iter()
            .any(|line| line.starts_with("HEALTHCHECK "))
    );
    assert!(dockerfile.contains("--probe\", \"http://127.0.0.1:8080/health/ready\""));
    assert!(dockerfile.contains("--example deploy-service"));
}
