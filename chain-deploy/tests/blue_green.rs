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

/// Deploys by replacing the environment's process: requests still running
/// in the old one fail (its `killed` flag), new ones go to the new address.
struct Replacing {
    router: TrafficRouter,
    old: std::sync::Arc<std::sync::atomic::AtomicBool>,
    new: String,
}

impl chain_deploy::deployer::Deployer for Replacing {
    fn deploy<'a>(
        &'a self,
        environment: &'a str,
        _version: &'a str,
    ) -> chain_core::BoxFuture<'a, Result<(), chain_core::BoxError>> {
        Box::pin(async move {
            if environment == "blue" {
                self.old.store(true, Ordering::SeqCst);
                self.router.set_target("blue", &self.new)?;
            }
            Ok(())
        })
    }
}

/// A switch drains the environment it leaves: the next deploy to it waits
/// for the requests still running there, so replacing its process fails
/// none of them. Under continuous load of slow requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_deploy_waits_for_the_old_environments_requests() {
    let blue = Behaviour::version("v1").delayed(std::time::Duration::from_millis(300));
    let blue_killed = std::sync::Arc::clone(&blue.killed);
    let (router, url, _server) = environments(blue, Behaviour::version("v2")).await;
    let replacement = support::upstream(Behaviour::version("v3")).await;
    let releases = BlueGreen::new(
        router.clone(),
        "blue",
        "green",
        Replacing {
            router: router.clone(),
            old: blue_killed,
            new: format!("http://{replacement}"),
        },
    )
    .unwrap()
    .with_validation(quick_validation());
    let load = Load::start(&url, 6);
    load.wait_for(12).await;
    releases.deploy("v2").await.unwrap();
    assert_eq!(releases.active().await, "green");
    // Blue still has slow requests running: deploying v3 there at once
    // must wait for them.
    releases.deploy("v3").await.unwrap();
    assert_eq!(releases.active().await, "blue");
    load.wait_for(50).await;
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "{:?}", seen.failures.first());
    assert!(
        seen.versions["v1"] > 0 && seen.versions["v3"] > 0,
        "{:?}",
        seen.versions
    );
    assert_eq!(router.in_flight("blue").unwrap(), 0);
}

/// Points an environment at a prepared server per version.
struct Retargeting {
    router: TrafficRouter,
    servers: std::collections::HashMap<&'static str, String>,
}

impl chain_deploy::deployer::Deployer for Retargeting {
    fn deploy<'a>(
        &'a self,
        environment: &'a str,
        version: &'a str,
    ) -> chain_core::BoxFuture<'a, Result<(), chain_core::BoxError>> {
        Box::pin(async move {
            let url = self.servers.get(version).ok_or("no such version")?;
            self.router.set_target(environment, url)?;
            Ok(())
        })
    }
}

/// After a deploy whose validation failed, the idle environment runs the
/// failed version: a rollback there is refused (its health endpoint being
/// fine), and the status says what runs where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refuses_an_environment_that_failed_its_last_validation() {
    let (router, _url, _server) =
        environments(Behaviour::version("v1"), Behaviour::version("v2")).await;
    let v2 = support::upstream(Behaviour::version("v2")).await;
    // Healthy by its health endpoint, failing a fifth of its requests.
    let v3 = support::upstream(Behaviour::version("v3").failing_every(5)).await;
    let releases = BlueGreen::new(
        router.clone(),
        "blue",
        "green",
        Retargeting {
            router: router.clone(),
            servers: [
                ("v2", format!("http://{v2}")),
                ("v3", format!("http://{v3}")),
            ]
            .into_iter()
            .collect(),
        },
    )
    .unwrap()
    .with_validation(quick_validation());
    releases.deploy("v2").await.unwrap();
    assert!(matches!(
        releases.deploy("v3").await.unwrap_err(),
        DeployError::ValidationFailed { .. }
    ));
    assert_eq!(releases.active().await, "green");

    let status = releases.status().await.unwrap();
    assert_eq!(status.active_version.as_deref(), Some("v2"));
    assert_eq!(status.idle_environment, "blue");
    assert_eq!(
        status.idle_version.as_deref(),
        Some("v3"),
        "blue runs v3 now"
    );
    assert_eq!(status.idle_validated, Some(false));

    let error = releases.rollback().await.unwrap_err();
    assert!(
        matches!(error, DeployError::RollbackRefused { .. })
            && error.to_string().contains("v3")
            && error.to_string().contains("failed its last validation"),
        "{error}"
    );
    assert_eq!(router.share_of("green").unwrap(), 100.0);
    let last = releases.history().last().cloned().unwrap();
    assert_eq!(
        (last.action, last.version.as_deref()),
        ("refused", Some("v3"))
    );
}

/// One release at a time: a deploy or rollback asked for while another
/// runs is refused at once, and reading the state never waits for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_release_is_refused_and_reads_never_wait() {
    let (router, _url, _server) = environments(
        Behaviour::version("v1"),
        Behaviour::version("v2").delayed(std::time::Duration::from_millis(50)),
    )
    .await;
    let releases = std::sync::Arc::new(
        BlueGreen::new(router.clone(), "blue", "green", NoopDeployer)
            .unwrap()
            .with_validation(quick_validation()),
    );
    let deploying = {
        let releases = std::sync::Arc::clone(&releases);
        tokio::spawn(async move { releases.deploy("v2").await })
    };
    // The validation takes a while (its requests take 50 ms each).
    while releases.history().is_empty() {
        tokio::task::yield_now().await;
    }
    let status = tokio::time::timeout(std::time::Duration::from_millis(100), releases.status())
        .await
        .expect("the status is read without waiting for the release");
    assert_eq!(status.unwrap().active_environment, "blue");
    for refused in [
        releases.deploy("v3").await.unwrap_err(),
        releases.rollback().await.unwrap_err(),
    ] {
        assert!(
            matches!(refused, DeployError::ReleaseInProgress { .. }),
            "{refused}"
        );
    }
    deploying.await.unwrap().unwrap();
    assert_eq!(releases.active().await, "green");
}

/// A health endpoint that sends its head and then stalls has not answered:
/// the probe's timeout covers the body too, so a rollback to it is refused
/// instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_probe_whose_body_stalls_times_out() {
    let stalling_address =
        support::raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf").await;
    let (router, _url, _server) =
        environments(Behaviour::version("v1"), Behaviour::version("v2")).await;
    // Probes give up after twice the highest average latency: 1 s here.
    let releases = BlueGreen::new(router.clone(), "blue", "green", NoopDeployer)
        .unwrap()
        .with_validation(Validation {
            max_average_latency: std::time::Duration::from_millis(500),
            ..quick_validation()
        });
    releases.deploy("v2").await.unwrap();
    router
        .set_target("blue", &format!("http://{stalling_address}"))
        .unwrap();
    let error = tokio::time::timeout(std::time::Duration::from_secs(30), releases.rollback())
        .await
        .expect("the probe gave up on the stalled body")
        .unwrap_err();
    assert!(
        error.to_string().contains("did not answer within"),
        "{error}"
    );
    assert_eq!(releases.active().await, "green");
}

/// The history keeps its newest entries only, so a long-lived manager does
/// not grow without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_its_newest_entries() {
    let (router, _url, _server) =
        environments(Behaviour::version("v1"), Behaviour::version("v2")).await;
    let releases = BlueGreen::new(router, "blue", "green", NoopDeployer)
        .unwrap()
        .with_validation(quick_validation())
        .with_history_limit(4);
    releases.deploy("v2").await.unwrap();
    releases.deploy("v3").await.unwrap();
    let actions: Vec<_> = releases
        .history()
        .iter()
        .map(|entry| (entry.action, entry.version.clone()))
        .collect();
    assert_eq!(actions.len(), 4);
    assert_eq!(actions.last().unwrap(), &("switch", Some("v3".to_owned())));
    assert_eq!(releases.status().await.unwrap().deployment_history_count, 4);
}

/// A deploy script that starts the service in the background (`service &`)
/// leaves it holding the script's stdout and stderr: the deploy is over
/// when the script exits, not when those pipes close.
#[tokio::test]
async fn a_deploy_command_that_leaves_a_process_running_returns_when_it_exits() {
    let marker = std::env::temp_dir().join(format!("modulink-deploy-{}", std::process::id()));
    let deployer = CommandDeployer::new(
        "sh",
        [
            "-c".to_owned(),
            format!(
                "sleep 60 & echo $! > {}; echo deployed $MODULINK_VERSION; exit 0",
                marker.display()
            ),
        ],
    );
    let deployed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        chain_deploy::deployer::Deployer::deploy(&deployer, "green", "v2"),
    )
    .await;
    let background = std::fs::read_to_string(&marker).unwrap();
    let _ = std::process::Command::new("kill")
        .arg(background.trim())
        .status();
    let _ = std::fs::remove_file(&marker);
    deployed
        .expect("the deploy waited for the background process")
        .unwrap();
}
