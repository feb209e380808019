//! The in-process event bus: routing, priorities, backpressure, shutdown,
//! redelivery, dead letters and history.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use chain_core::{Chain, Context, Error, ErrorKind, Result};
use chain_scaling::events::{Event, EventBus, EventBusError, FollowUps, Priority, Redelivery};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const WAIT: Duration = Duration::from_secs(10);

fn fast_redelivery(max: u32) -> Redelivery {
    Redelivery::new(max).with_backoff(Duration::from_millis(1), Duration::from_millis(4))
}

/// Whether a future is still pending after being polled once.
async fn is_pending<F: Future>(future: &mut Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_pending())).await
}

/// A chain that records the `label` of each event it handles.
fn recorder(name: &'static str, seen: Arc<Mutex<Vec<String>>>) -> Chain {
    Chain::named(name).link(move |ctx: Context| {
        let seen = Arc::clone(&seen);
        async move {
            let label: String = ctx.require("event_data")?;
            seen.lock().unwrap().push(label);
            Ok(ctx)
        }
    })
}

/// A chain whose handler waits until `gate` has a permit, then records.
fn gated(gate: Arc<Semaphore>, started: Arc<Semaphore>) -> Chain {
    Chain::named("gated").link(move |ctx: Context| {
        let gate = Arc::clone(&gate);
        let started = Arc::clone(&started);
        async move {
            started.add_permits(1);
            gate.acquire().await.map_err(Error::internal_from)?.forget();
            Ok(ctx)
        }
    })
}

/// A bus with one worker, held busy by a `block` event until the returned
/// gate gets a permit (each later `block` event waits for one too).
async fn bus_with_busy_worker(capacity: usize) -> (EventBus, Arc<Semaphore>) {
    let bus = EventBus::builder()
        .workers(1)
        .capacity(capacity)
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(Semaphore::new(0));
    bus.subscribe("block", gated(Arc::clone(&gate), Arc::clone(&started)))
        .await
        .unwrap();
    bus.publish(Event::new("block", json!(null))).await.unwrap();
    tokio::time::timeout(WAIT, started.acquire())
        .await
        .unwrap()
        .unwrap()
        .forget();
    (bus, gate)
}

// The seed's registration and order chains.

async fn validate_user_data(ctx: Context) -> Result<Context> {
    let data: Value = ctx.require("event_data")?;
    for field in ["email", "username", "password"] {
        if data.get(field).is_none() {
            return Err(Error::validation(format!(
                "missing required field: {field}"
            )));
        }
    }
    Ok(ctx.with("validation_passed", true))
}

async fn create_user_account(ctx: Context) -> Result<Context> {
    Ok(ctx
        .with("user_created", true)
        .with("user_id", "USR-1")
        .with("account_status", "pending_verification"))
}

async fn calculate_pricing(ctx: Context) -> Result<Context> {
    let data: Value = ctx.require("event_data")?;
    let subtotal: f64 = data["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["price"].as_f64().unwrap_or(0.0) * i["quantity"].as_f64().unwrap_or(0.0))
                .sum()
        })
        .unwrap_or(0.0);
    Ok(ctx
        .with("subtotal", subtotal)
        .with("total", subtotal * 1.08))
}

#[tokio::test]
async fn seed_chains_handle_their_events_and_report_completion() {
    let bus = EventBus::builder()
        .redelivery(fast_redelivery(3))
        .build()
        .unwrap();
    bus.subscribe(
        "user_registration",
        Chain::named("registration")
            .link(validate_user_data)
            .link(create_user_account),
    )
    .await
    .unwrap();
    bus.subscribe(
        "order_created",
        Chain::named("orders").link(calculate_pricing),
    )
    .await
    .unwrap();

    bus.publish(
        Event::new(
            "user_registration",
            json!({"email": "user@example.com", "username": "newuser", "password": "pw"}),
        )
        .with_correlation_id("REG-001"),
    )
    .await
    .unwrap();
    bus.publish(
        Event::new(
            "order_created",
            json!({"items": [{"price": 29.99, "quantity": 2}, {"price": 49.99, "quantity": 1}]}),
        )
        .with_priority(Priority::High)
        .with_correlation_id("ORD-001"),
    )
    .await
    .unwrap();
    let incomplete = Event::new("user_registration", json!({"email": "x@example.com"}))
        .with_correlation_id("REG-002");
    let incomplete_id = bus.publish(incomplete).await.unwrap();
    bus.shutdown().await;

    let store = bus.store().unwrap();
    let registration = store.by_correlation_id("REG-001");
    let types: Vec<_> = registration.iter().map(|e| e.event_type.as_ref()).collect();
    assert_eq!(types, ["user_registration", "user_registration_completed"]);
    let result = &registration[1].payload["result"];
    assert_eq!(result["user_id"], "USR-1");
    assert_eq!(result["validation_passed"], true);
    assert!(
        result.get("event_data").is_none(),
        "delivery fields are not part of the result"
    );
    assert_eq!(
        registration[1].payload["original_event_id"],
        json!(registration[0].id)
    );

    let order = store.by_correlation_id("ORD-001");
    let total = order[1].payload["result"]["total"].as_f64().unwrap();
    assert!((total - 118.7676).abs() < 1e-9, "{total}");

    // A validation error is not retried: one delivery, then the DLQ and a
    // High-priority `_failed` event carrying the payload.
    let failed = store.by_type("user_registration_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].priority, Priority::High);
    assert_eq!(failed[0].correlation_id, "REG-002");
    assert_eq!(failed[0].payload["deliveries"], 1);
    assert_eq!(failed[0].payload["error_kind"], "validation");
    assert_eq!(failed[0].payload["event_data"]["email"], "x@example.com");
    let letters = bus.dead_letters().drain();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event.id, incomplete_id);
    assert!(
        letters[0].error.to_string().contains("username"),
        "{}",
        letters[0].error
    );

    let stats = bus.stats();
    assert_eq!(
        (stats.published, stats.completed, stats.dead_lettered),
        (3, 2, 1)
    );
    assert_eq!(stats.redelivered, 0);
}

#[tokio::test]
async fn every_subscription_gets_every_event_with_the_event_in_its_context() {
    let bus = EventBus::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    bus.subscribe("ping", recorder("first", Arc::clone(&seen)))
        .await
        .unwrap();
    let context_seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&context_seen);
    let inspector = Chain::named("second").link(move |ctx: Context| {
        let sink = Arc::clone(&sink);
        async move {
            let event = ctx.ext::<Arc<Event>>().cloned();
            *sink.lock().unwrap() = Some((ctx.to_json(), event));
            Ok(ctx)
        }
    });
    bus.subscribe("ping", inspector).await.unwrap();
    let id = bus
        .publish(
            Event::new("ping", json!("hello"))
                .with_correlation_id("c-1")
                .with_source("test"),
        )
        .await
        .unwrap();
    bus.shutdown().await;

    assert_eq!(*seen.lock().unwrap(), ["hello"]);
    let (fields, event) = context_seen.lock().unwrap().take().unwrap();
    assert_eq!(fields["event_id"], id.to_string());
    assert_eq!(fields["event_data"], "hello");
    assert_eq!(fields["correlation_id"], "c-1");
    assert_eq!(fields["delivery"], 1);
    assert!(fields["timestamp"].as_str().unwrap().ends_with('Z'));
    let event = event.unwrap();
    assert_eq!((event.id, event.event_type.as_ref()), (id, "ping"));
    assert_eq!(
        (event.source.as_str(), event.priority),
        ("test", Priority::Medium)
    );
    assert_eq!(bus.stats().completed, 2);
}

#[tokio::test]
async fn queued_events_run_highest_priority_first_and_fifo_within_one() {
    let (bus, gate) = bus_with_busy_worker(1024).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    bus.subscribe("work", recorder("recorder", Arc::clone(&seen)))
        .await
        .unwrap();

    // The only worker is busy: queue a mix of priorities.
    let order = [
        ("low-1", Priority::Low),
        ("medium-1", Priority::Medium),
        ("high-1", Priority::High),
        ("low-2", Priority::Low),
        ("high-2", Priority::High),
        ("medium-2", Priority::Medium),
    ];
    for (label, priority) in order {
        bus.publish(Event::new("work", json!(label)).with_priority(priority))
            .await
            .unwrap();
    }
    assert!(seen.lock().unwrap().is_empty());
    gate.add_permits(1);
    bus.shutdown().await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["high-1", "high-2", "medium-1", "medium-2", "low-1", "low-2"]
    );
}

#[tokio::test]
async fn a_critical_event_is_handled_before_publish_returns_even_behind_a_full_queue() {
    let (bus, gate) = bus_with_busy_worker(1).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    bus.subscribe("alarm", recorder("alarm", Arc::clone(&seen)))
        .await
        .unwrap();

    assert!(matches!(
        bus.try_publish(Event::new("alarm", json!("queued"))),
        Err(EventBusError::Full { capacity: 1 })
    ));
    bus.publish(Event::new("alarm", json!("fire")).with_priority(Priority::Critical))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["fire"]);
    gate.add_permits(1);
    bus.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_makes_publish_wait_and_try_publish_fail() {
    // Two events fill the queue (the one being handled still holds its slot).
    let (bus, gate) = bus_with_busy_worker(2).await;
    bus.try_publish(Event::new("block", json!(2))).unwrap();
    assert!(matches!(
        bus.try_publish(Event::new("block", json!(3))),
        Err(EventBusError::Full { .. })
    ));
    let waiting = bus.publish(Event::new("block", json!(3)));
    tokio::pin!(waiting);
    assert!(is_pending(&mut waiting).await, "publish must wait for room");

    gate.add_permits(1);
    tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    gate.add_permits(2);
    bus.shutdown().await;
    assert_eq!(bus.stats().completed, 3);
}

#[tokio::test]
async fn shutdown_drains_admitted_events_and_then_refuses_new_ones() {
    let bus = EventBus::builder()
        .workers(2)
        .capacity(8)
        .redelivery(fast_redelivery(2))
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    // Every event fails its first delivery, so draining includes waiting
    // for redeliveries.
    let flaky = Chain::named("flaky").link(move |ctx: Context| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            let delivery: u32 = ctx.require("delivery")?;
            if delivery == 1 {
                return Err(Error::unavailable("first delivery fails"));
            }
            Ok(ctx)
        }
    });
    bus.subscribe("job", flaky).await.unwrap();
    for n in 0..100 {
        bus.publish(Event::new("job", json!(n))).await.unwrap();
    }
    bus.shutdown().await;
    let stats = bus.stats();
    assert_eq!(stats.completed, 100);
    assert_eq!(stats.redelivered, 100);
    assert_eq!(attempts.load(Ordering::Relaxed), 200);
    assert_eq!(bus.transport().pending(), 0);
    assert!(matches!(
        bus.publish(Event::new("job", json!("late"))).await,
        Err(EventBusError::Closed)
    ));
    assert!(matches!(
        bus.try_publish(Event::new("job", json!("late"))),
        Err(EventBusError::Closed)
    ));
}

#[tokio::test]
async fn a_publisher_waiting_for_room_is_refused_when_the_bus_shuts_down() {
    let (bus, gate) = bus_with_busy_worker(1).await;

    let waiting = bus.publish(Event::new("block", json!(2)));
    tokio::pin!(waiting);
    assert!(is_pending(&mut waiting).await);
    let shutdown = bus.shutdown();
    tokio::pin!(shutdown);
    assert!(
        is_pending(&mut shutdown).await,
        "shutdown waits for the blocked event"
    );
    assert!(matches!(waiting.await, Err(EventBusError::Closed)));
    gate.add_permits(1);
    tokio::time::timeout(WAIT, shutdown).await.unwrap();
    assert_eq!(bus.stats().completed, 1);
}

#[tokio::test]
async fn failing_handlers_are_redelivered_then_dead_lettered_with_the_last_error() {
    let bus = EventBus::builder()
        .redelivery(fast_redelivery(3))
        .build()
        .unwrap();
    let poison = Chain::named("poison").link(|ctx: Context| async move {
        let delivery: u32 = ctx.require("delivery")?;
        Err::<Context, _>(Error::unavailable(format!("down on delivery {delivery}")))
    });
    bus.subscribe("charge", poison).await.unwrap();
    let recovered = Arc::new(Mutex::new(Vec::new()));
    bus.subscribe(
        "charge_failed",
        recorder_of_failures(Arc::clone(&recovered)),
    )
    .await
    .unwrap();

    let id = bus
        .publish(Event::new("charge", json!({"amount": 5})).with_correlation_id("PAY-1"))
        .await
        .unwrap();
    bus.shutdown().await;

    let letters = bus.dead_letters().drain();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event.id, id);
    assert_eq!(letters[0].subscription, "poison");
    assert_eq!(letters[0].deliveries, 3);
    assert_eq!(letters[0].error.kind(), ErrorKind::Unavailable);
    assert!(letters[0].error.to_string().contains("down on delivery 3"));
    assert!(bus.dead_letters().is_empty());

    let stats = bus.stats();
    assert_eq!((stats.redelivered, stats.dead_lettered), (2, 1));
    // The `_failed` event reached its subscriber with the original payload.
    assert_eq!(*recovered.lock().unwrap(), [json!({"amount": 5})]);
}

fn recorder_of_failures(seen: Arc<Mutex<Vec<Value>>>) -> Chain {
    Chain::named("compensate").link(move |ctx: Context| {
        let seen = Arc::clone(&seen);
        async move {
            let data: Value = ctx.require("event_data")?;
            seen.lock().unwrap().push(data["event_data"].clone());
            Ok(ctx)
        }
    })
}

#[tokio::test]
async fn a_failing_failure_handler_does_not_start_a_loop() {
    let bus = EventBus::builder()
        .redelivery(fast_redelivery(1))
        .build()
        .unwrap();
    let fail = || {
        Chain::named("fails").link(|_: Context| async { Err::<Context, _>(Error::internal("no")) })
    };
    bus.subscribe("task", fail()).await.unwrap();
    bus.subscribe("task_failed", fail()).await.unwrap();
    bus.publish(Event::new("task", json!(1))).await.unwrap();
    bus.shutdown().await;
    let store = bus.store().unwrap();
    assert_eq!(store.by_type("task_failed").len(), 1);
    assert!(store.by_type("task_failed_failed").is_empty());
    assert_eq!(bus.stats().dead_lettered, 2);
}

#[tokio::test]
async fn a_panicking_handler_is_dead_lettered_and_the_workers_carry_on() {
    let bus = EventBus::builder()
        .workers(1)
        .redelivery(fast_redelivery(2))
        .build()
        .unwrap();
    let panics = Chain::named("panics").link(|ctx: Context| async move {
        let n: u32 = ctx.require("event_data")?;
        assert!(n != 0, "zero is poison");
        Ok(ctx)
    });
    bus.subscribe("n", panics).await.unwrap();
    for n in [0, 1, 2] {
        bus.publish(Event::new("n", json!(n))).await.unwrap();
    }
    bus.shutdown().await;
    let letters = bus.dead_letters().drain();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].error.kind(), ErrorKind::Panicked);
    assert_eq!(letters[0].deliveries, 2);
    assert_eq!(bus.stats().completed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_every_delivery_ends_exactly_once() {
    let bus = EventBus::builder()
        .workers(4)
        .capacity(64)
        .redelivery(fast_redelivery(3))
        .without_store()
        .build()
        .unwrap();
    // Two subscriptions: one always succeeds, one fails events whose number
    // is divisible by 7 on every delivery and by 3 on the first only.
    bus.subscribe("item", Chain::named("ok").link_sync(Ok))
        .await
        .unwrap();
    let picky = Chain::named("picky").link_sync(|ctx: Context| {
        let n: u64 = ctx.require("event_data")?;
        let delivery: u32 = ctx.require("delivery")?;
        if n.is_multiple_of(7) || (n.is_multiple_of(3) && delivery == 1) {
            return Err(Error::unavailable("not now"));
        }
        Ok(ctx)
    });
    bus.subscribe("item", picky).await.unwrap();

    let publishers: Vec<_> = (0..4u64)
        .map(|p| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for n in (p * 2_500)..((p + 1) * 2_500) {
                    bus.publish(Event::new("item", json!(n))).await.unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    bus.shutdown().await;

    let stats = bus.stats();
    let poison = (0..10_000u64).filter(|n| n.is_multiple_of(7)).count() as u64;
    assert_eq!(stats.published, 10_000);
    assert_eq!(stats.completed + stats.dead_lettered, 20_000);
    assert_eq!(stats.dead_lettered, poison);
    assert_eq!(bus.dead_letters().len() as u64, poison);
    let retried_once = (0..10_000u64)
        .filter(|n| n.is_multiple_of(3) && !n.is_multiple_of(7))
        .count() as u64;
    assert_eq!(stats.redelivered, retried_once + 2 * poison);
}

#[tokio::test]
async fn events_nobody_subscribed_to_are_recorded_as_unrouted() {
    let bus = EventBus::new().unwrap();
    bus.publish(Event::new("nobody_listens", json!(1)).with_correlation_id("u"))
        .await
        .unwrap();
    bus.shutdown().await;
    let stats = bus.stats();
    assert_eq!(
        (stats.published, stats.unrouted, stats.completed),
        (1, 1, 0)
    );
    assert_eq!(bus.store().unwrap().by_correlation_id("u").len(), 1);
}

#[tokio::test]
async fn bad_types_names_and_duplicates_are_errors() {
    let bus = EventBus::new().unwrap();
    assert!(matches!(
        bus.publish(Event::new("orders.>", json!(1))).await,
        Err(EventBusError::InvalidEventType { .. })
    ));
    assert!(matches!(
        bus.subscribe("a b", Chain::named("x")).await,
        Err(EventBusError::InvalidEventType { .. })
    ));
    assert!(matches!(
        bus.subscribe_as("a", "has space", Chain::new()).await,
        Err(EventBusError::InvalidSubscriptionName { .. })
    ));
    bus.subscribe("a", Chain::named("x")).await.unwrap();
    let duplicate = bus.subscribe("a", Chain::named("x")).await.unwrap_err();
    assert!(
        duplicate.to_string().contains("Chain::named"),
        "{duplicate}"
    );
    bus.subscribe("b", Chain::named("x")).await.unwrap();
    assert_eq!(bus.stats().published, 0);
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    assert!(matches!(EventBus::new(), Err(EventBusError::NoRuntime)));
}

#[tokio::test]
async fn follow_ups_can_be_switched_off_while_history_is_kept() {
    let bus = EventBus::builder()
        .follow_ups(FollowUps::Never)
        .build()
        .unwrap();
    bus.subscribe("ping", Chain::named("ok").link_sync(Ok))
        .await
        .unwrap();
    bus.publish(Event::new("ping", json!(1)).with_correlation_id("f"))
        .await
        .unwrap();
    bus.shutdown().await;
    let history = bus.store().unwrap().by_correlation_id("f");
    assert_eq!(history.len(), 1, "only the event itself: {history:?}");
    assert_eq!(bus.stats().completed, 1);
}

#[tokio::test]
async fn handling_a_report_produces_no_report_of_a_report() {
    let bus = EventBus::new().unwrap();
    bus.subscribe("ping", Chain::named("ok").link_sync(Ok))
        .await
        .unwrap();
    bus.subscribe("ping_completed", Chain::named("audit").link_sync(Ok))
        .await
        .unwrap();
    bus.publish(Event::new("ping", json!(1)).with_correlation_id("r"))
        .await
        .unwrap();
    bus.shutdown().await;
    let types: Vec<_> = bus
        .store()
        .unwrap()
        .by_correlation_id("r")
        .iter()
        .map(|event| event.event_type.to_string())
        .collect();
    assert_eq!(types, ["ping", "ping_completed"]);
    assert_eq!(bus.stats().completed, 2);
}

/// A caller that gives up on a critical publish (a timeout, a client gone)
/// drops the future that runs the subscriptions inline. The bus stays
/// consistent: the subscription that was interrupted and the ones not yet
/// run are handed to the workers, every one of them runs, and shutdown
/// completes.
#[tokio::test]
async fn a_cancelled_critical_publish_still_delivers_and_shutdown_completes() {
    let bus = EventBus::builder().workers(2).build().unwrap();
    let first_call = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let started = Arc::new(Semaphore::new(0));
    let slow = {
        let first_call = Arc::clone(&first_call);
        let started = Arc::clone(&started);
        Chain::named("slow").link(move |ctx: Context| {
            let first_call = first_call.swap(false, Ordering::SeqCst);
            let started = Arc::clone(&started);
            async move {
                if first_call {
                    started.add_permits(1);
                    // Held until the publisher gives up.
                    std::future::pending::<()>().await;
                }
                Ok(ctx)
            }
        })
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    bus.subscribe_as("alarm", "slow", slow).await.unwrap();
    bus.subscribe_as("alarm", "second", recorder("second", Arc::clone(&seen)))
        .await
        .unwrap();
    bus.subscribe_as("alarm", "third", recorder("third", Arc::clone(&seen)))
        .await
        .unwrap();

    let publish = bus.publish(Event::new("alarm", json!("fire")).with_priority(Priority::Critical));
    tokio::select! {
        _ = publish => panic!("the slow handler never finishes on its first call"),
        permit = started.acquire() => permit.unwrap().forget(),
    }
    // The publish future is dropped here, mid-handler.

    tokio::time::timeout(WAIT, bus.shutdown())
        .await
        .expect("shutdown completes after a cancelled critical publish");
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["fire", "fire"], "the other subscriptions ran");
    assert!(
        !first_call.load(Ordering::SeqCst),
        "the interrupted subscription ran"
    );
    assert_eq!(bus.transport().pending(), 0);
    // Accepted, so counted and in the history, though its publish never
    // returned.
    assert_eq!(bus.stats().published, 1);
    assert_eq!(bus.store().unwrap().by_type("alarm").len(), 1);
}

#[tokio::test]
async fn publish_all_publishes_in_order_or_nothing_when_a_type_is_invalid() {
    let bus = EventBus::builder().build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    bus.subscribe("job", recorder("record", Arc::clone(&seen)))
        .await
        .unwrap();

    let error = bus
        .publish_all([
            Event::new("job", json!("a")),
            Event::new("not a type", json!("b")),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(error, EventBusError::InvalidEventType { ref event_type } if event_type == "not a type"),
        "{error}"
    );
    assert_eq!(bus.stats().published, 0, "nothing is published");

    let events: Vec<Event> = (0..50)
        .map(|n| Event::new("job", json!(format!("e{n}"))))
        .collect();
    let expected: Vec<_> = events.iter().map(|event| event.id).collect();
    assert_eq!(bus.publish_all(events).await.unwrap(), expected);
    bus.shutdown().await;
    assert_eq!(bus.stats().published, 50);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|label| label[1..].parse::<u32>().unwrap());
    assert_eq!(seen, (0..50).map(|n| format!("e{n}")).collect::<Vec<_>>());
}

/// Handled events go back to be freed by the next publish (so a publisher's
/// allocations are freed on its own thread); none is kept once the workers
/// are idle, whether or not anything is published again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_events_are_freed_once_the_workers_are_idle() {
    let bus = EventBus::builder().without_store().build().unwrap();
    let handled = Arc::new(Mutex::new(Vec::<std::sync::Weak<Event>>::new()));
    let seen = Arc::clone(&handled);
    bus.subscribe(
        "job",
        Chain::named("keep").link_sync(move |ctx: Context| {
            let event = ctx.ext::<Arc<Event>>().expect("the event is an extension");
            seen.lock().unwrap().push(Arc::downgrade(event));
            Ok(ctx)
        }),
    )
    .await
    .unwrap();
    for n in 0..200 {
        bus.publish(Event::new("job", json!(n))).await.unwrap();
    }
    let all_freed = || {
        let handled = handled.lock().unwrap();
        handled.len() == 200 && handled.iter().all(|event| event.strong_count() == 0)
    };
    tokio::time::timeout(WAIT, async {
        while !all_freed() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every handled event is freed without another publish");
    assert_eq!(bus.stats().completed, 200);
}
