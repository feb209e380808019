//! The AWS Secrets Manager source against a real Secrets Manager-compatible
//! server: `moto_server` (PyPI `moto[server]`, installed by
//! `scripts/test.sh`), started here on a free port of 127.0.0.1.
#![cfg(feature = "aws")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::primitives::Blob;
use chain_core::ErrorKind;
use chain_security::secrets::{AwsSecretsSource, AwsSettings, Fernet, MultiFernet, SecretManager};

/// A running `moto_server`, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> String {
    if let Ok(path) = std::env::var("MOTO_SERVER") {
        return path;
    }
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/moto-venv/bin/moto_server"
    );
    if std::path::Path::new(venv).exists() {
        venv.to_owned()
    } else {
        "moto_server".to_owned()
    }
}

async fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(moto_binary())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server is needed: run scripts/test.sh, or pip install 'moto[server]'");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    // Wait for the server to accept connections (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    moto
}

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_a_secrets_manager_server() {
    let moto = start_moto().await;
    let aws = client(&moto.endpoint);
    let key = Fernet::new(&Fernet::generate_key().unwrap()).unwrap();
    aws.create_secret()
        .name("modulink/db-password")
        .secret_string("hunter2")
        .send()
        .await
        .unwrap();
    aws.create_secret()
        .name("modulink/signing-key")
        .secret_binary(Blob::new(b"binary-key".to_vec()))
        .send()
        .await
        .unwrap();
    aws.create_secret()
        .name("modulink/payment-api-key")
        .secret_string(format!("enc:{}", key.encrypt(b"sk_live_7").unwrap()))
        .send()
        .await
        .unwrap();
    aws.create_secret()
        .name("other/db-password")
        .secret_string("not ours")
        .send()
        .await
        .unwrap();

    let secrets = SecretManager::builder()
        .source(AwsSecretsSource::from_client(
            aws.clone(),
            AwsSettings::default(),
        ))
        .fernet(MultiFernet::new(vec![key]).unwrap())
        .build();
    assert_eq!(
        secrets.get("db-password").await.unwrap().expose(),
        "hunter2"
    );
    assert_eq!(
        secrets.get("signing-key").await.unwrap().expose(),
        "binary-key"
    );
    assert_eq!(
        secrets.get("payment-api-key").await.unwrap().expose(),
        "sk_live_7"
    );

    let missing = secrets.get("nope").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(
        missing.to_string().contains("AWS Secrets Manager"),
        "{missing}"
    );

    // A new version is seen after a refresh, not before (the cache holds).
    aws.put_secret_value()
        .secret_id("modulink/db-password")
        .secret_string("correct horse")
        .send()
        .await
        .unwrap();
    assert_eq!(
        secrets.get("db-password").await.unwrap().expose(),
        "hunter2"
    );
    assert_eq!(
        secrets.refresh("db-password").await.unwrap().expose(),
        "correct horse"
    );

    // The previous version stays readable by its stage.
    let previous = SecretManager::builder()
        .source(AwsSecretsSource::from_client(
            aws,
            AwsSettings {
                version_stage: Some("AWSPREVIOUS".to_owned()),
                ..AwsSettings::default()
            },
        ))
        .build();
    assert_eq!(
        previous.get("db-password").await.unwrap().expose(),
        "hunter2"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_not_missing() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let secrets = SecretManager::builder()
        .source(AwsSecretsSource::from_client(
            client(&format!("http://{closed}")),
            AwsSettings::default(),
        ))
        .build();
    let err = secrets.get("db-password").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}
