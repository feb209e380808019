//! Blue-green releases against real upstreams, under load.

mod support;

use std::sync::atomic::Ordering;

use chain_deploy::DeployError;
use chain_deploy::blue_green::{BlueGreen, Validation};
use chain_deploy::deployer::{CommandDeployer, NoopDeployer};
use chain_deploy::router::{RouterConfig, RouterServer, TrafficRouter};
use support::{Behaviour, Load, upstream};

async fn environments(blue: Behaviour, green: Behaviour) -> (TrafficRouter, String, RouterServer) {
    let blue = upstream(blue).await;
    let green = upstream(green).await;
    let router = TrafficRouter::new(
        RouterConfig::new()
            .upstream("blue", format!("http://{blue}"))
            .upstream("green", format!("http://{green}")),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = router.serve(listener);
    let url = format!("http://{}", server.local_addr().unwrap());
    (router, url, server)
}

fn quick_validation() -> Validation {
    Validation {
        load_requests: 40,
        load_concurrency: 4,
        ..Validation::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_under_continuous_load_loses_no_request() {
    let (router, url, _server) =
        environments(Behaviour::version("v1"), Behaviour::version("v2")).await;
    let releases = BlueGreen::new(router.clone(), "blue", "green", NoopDeployer)
        .unwrap()
        .with_validation(quick_validation());
    let load = Load::start(&url, 6);
    load.wait_for(200).await;
    let report = releases.deploy("v2").await.unwrap();
    load.wait_for(200).await;
    let seen = load.stop().await;

    assert!(report.passed(), "{report:?}");
    assert_eq!(report.load_success_rate, 1.0);
    assert_eq!(seen.failed, 0, "{:?}", seen.failures.first());
    assert!(
        seen.versions["v1"] > 0 && seen.versions["v2"] > 0,
        "{:?}",
        seen.versions
    );
    assert_eq!(releases.active().await, "green");
    assert_eq!(router.share_of("green").unwrap(), 100.0);
    let status = releases.status().await.unwrap();
    assert_eq!(status.active_version.as_deref(), Some("v2"));
    let actions: Vec<_> = releases
        .history()
        .iter()
        .map(|entry| entry.action)
        .collect();
    assert_eq!(actions, ["deploy", "validate", "switch"]);
    assert!(releases.history().iter().all(|entry| entry.at_unix_ms > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_failing_validation_gets_no_traffic() {
    let green = Behaviour::version("v2").failing_every(5);
    let (router, _url, _server) = environments(Behaviour::version("v1"), green).await;
    let releases = BlueGreen::new(router.clone(), "blue", "green", NoopDeployer)
        .unwrap()
        .with_validation(quick_validation());
    let error = releases.deploy("v2").await.unwrap_err();
    let DeployError::ValidationFailed {
        environment,
        reasons,
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(environment, "green");
    assert!(
        reasons.iter().any(|reason| reason.contains("below 95.0%")),
        "{reasons:?}"
    );
    assert_eq!(router.share_of("blue").unwrap(), 100.0);
    assert_eq!(releases.active().await, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refuses_an_unhealthy_environment() {
    let blue = Behaviour::version("v1");
    let blue_health = std::sync::Arc::clone(&blue.healthy);
    let (router, _url, _server) = environments(blue, Behaviour::version("v2")).await;
    let releases = BlueGreen::new(router.clone(), "blue", "green", NoopDeployer)
        .unwrap()
        .with_validation(quick_validation());
    releases.deploy("v2").await.unwrap();

    blue_health.store(false, Ordering::Relaxed);
    let error = releases.rollback().await.unwrap_err();
    assert!(
        matches!(error, DeployError::RollbackRefused { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("answered 503"), "{error}");
    assert_eq!(releases.active().await, "green");

    blue_health.store(true, Ordering::Relaxed);
    releases.rollback().await.unwrap();
    assert_eq!(releases.active().await, "blue");
    assert_eq!(router.share_of("blue").unwrap(), 100.0);
    let actions: Vec<_> = releases
        .history()
        .iter()
        .map(|entry| entry.action)
        .collect();
    assert_eq!(
        actions,
        ["deploy", "validate", "switch", "refused", "rollback"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_deploy_command_stops_the_release_with_its_output() {
    let (router, _url, _server) =
        environments(Behaviour::version("v1"), Behaviour::version("v2")).await;
    let deployer = CommandDeployer::new(
        "sh",
        [
            "-c",
            "echo \"cannot deploy $MODULINK_VERSION to $MODULINK_ENVIRONMENT\" >&2; exit 3",
        ],
    );
    let releases = BlueGreen::new(router.clone(), "blue", "green", deployer).unwrap();
    let error = releases.deploy("v9").await.unwrap_err();
    let DeployError::Deployer { source, .. } = &error else {
        panic!("{error}");
    };
    assert!(
        source.to_string().contains("cannot deploy v9 to green"),
        "{source}"
    );
    assert_eq!(router.share_of("blue").unwrap(), 100.0);
}
