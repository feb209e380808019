//! Credentials never travel with the data: a bearer token that passed
//! `auth()` is not in what a downstream service receives, and a validated
//! password is in no context JSON, no event and no log line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use examples::models::UserRegistration;
use modulink::observability::JsonLogLayer;
use modulink::resilience::{Orchestrator, ServiceEndpoint};
use modulink::scaling::events::{Event, EventBus};
use modulink::security::auth::{AuthManager, Role, auth};
use modulink::security::validation::{Sanitize, validate_input};
use modulink::{Chain, Context, RequestMeta, middleware::logging};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

const PASSWORD: &str = "Plaintext-Pa55word";

async fn manager() -> AuthManager {
    examples::test_users().await.unwrap()
}

/// An HTTP service on 127.0.0.1 recording the bodies it is sent.
async fn recording_service() -> (String, Arc<Mutex<Vec<String>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/",
        post(move |body: String| {
            let record = Arc::clone(&record);
            async move {
                record.lock().unwrap().push(body);
                Json(json!({"ok": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn a_token_that_passed_auth_is_not_sent_downstream() {
    let manager = manager().await;
    let login = manager.authenticate("ada", "Analytical1").await.unwrap();
    let (url, received) = recording_service().await;
    let downstream =
        Orchestrator::new([ServiceEndpoint::new("ledger", url).timeout(Duration::from_secs(5))])
            .unwrap();
    let chain = Chain::named("report")
        .link(auth(&manager, [Role::User]))
        .link(downstream.chain(["ledger"]).unwrap());

    let request = RequestMeta::new()
        .with_method("POST")
        .with_header("Authorization", format!("Bearer {}", login.access_token))
        .with_header("X-Request-Id", "r-1");
    let out = chain
        .execute(Context::new().with("account", 7).with_ext(request))
        .await
        .unwrap();

    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "the service was called once");
    let sent: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(sent["account"], 7, "the data did travel: {sent}");
    assert_eq!(sent["authenticated_user"]["username"], "ada");
    for (what, text) in [
        ("sent", bodies[0].clone()),
        ("result", out.to_json().to_string()),
    ] {
        assert!(
            !text.contains(&login.access_token),
            "the token is in the {what}: {text}"
        );
        assert!(!text.to_lowercase().contains("bearer"), "{what}: {text}");
    }
    // The edge's metadata is still there for the links that need it.
    assert_eq!(
        out.ext::<RequestMeta>()
            .and_then(|m| m.header("x-request-id")),
        Some("r-1")
    );
}

fn registration() -> Chain {
    Chain::named("registration")
        .link(validate_input::<UserRegistration>().from_field("event_data"))
        .link(Sanitize::new())
        .link_sync(|ctx: Context| {
            let registration = ctx
                .ext::<UserRegistration>()
                .ok_or_else(|| modulink::Error::internal("validated first"))?;
            // The password is where the link that needs it can read it.
            assert_eq!(registration.password.expose(), PASSWORD);
            Ok(ctx.with("user_created", true))
        })
}

/// The `_completed` follow-up of a registration event reports the result:
/// the password that came in is not in it.
#[tokio::test]
async fn a_validated_password_is_not_in_the_completed_event() {
    let bus = EventBus::builder().workers(1).build().unwrap();
    bus.subscribe("user_registration", registration())
        .await
        .unwrap();
    bus.publish(Event::new(
        "user_registration",
        json!({"username": "ada_1815", "email": "ada@example.com", "password": PASSWORD}),
    ))
    .await
    .unwrap();
    bus.shutdown().await;

    let store = bus.store().unwrap();
    let completed = store.by_type("user_registration_completed");
    assert_eq!(completed.len(), 1, "the registration ran and reported");
    let payload = serde_json::to_string(&completed[0].payload).unwrap();
    assert!(payload.contains("user_created"), "{payload}");
    assert!(!payload.contains(PASSWORD), "{payload}");
    assert!(!payload.contains("password"), "{payload}");
}

/// A writer the log layer can share, collecting every line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A chain logging each link's context, and a link logging the validated
/// registration: no line holds the password.
#[tokio::test]
async fn a_validated_password_is_in_no_log_line() {
    let lines = Lines::default();
    let sink = lines.clone();
    let subscriber = tracing_subscriber::registry().with(JsonLogLayer::new(move || sink.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let chain = Chain::named("registration")
        .observe(logging())
        .link(validate_input::<UserRegistration>())
        .link_sync(|ctx: Context| {
            let registration = ctx.ext::<UserRegistration>().cloned();
            tracing::info!(?registration, json = %ctx.to_json(), context = ?ctx, "registered");
            Ok(ctx)
        });
    let out = chain
        .execute(Context::new().with(
            "input_data",
            json!({"username": "ada_1815", "email": "ada@example.com", "password": PASSWORD}),
        ))
        .await
        .unwrap();
    assert!(out.get_value("validated_data").is_some());

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("registered"), "the link logged: {text}");
    assert!(!text.contains(PASSWORD), "{text}");
}
