//! Every manifest in `deploy/` parses and says what the docs promise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    assert_eq!(files.len(), 5, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let manifest: Value = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|error| panic!("{} does not parse: {error}", file.display()));
        let kind = manifest["kind"].as_str().unwrap().to_owned();
        assert!(
            manifest["apiVersion"].as_str().is_some(),
            "{kind} has no apiVersion"
        );
        assert_eq!(manifest["metadata"]["name"], "modulink-example", "{kind}");
        by_kind.insert(kind, manifest);
    }
    by_kind
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
