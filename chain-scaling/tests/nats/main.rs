//! The JetStream transport against a real `nats-server`: work shared by
//! worker processes, a worker killed mid-run, dead letters, de-duplication
//! and a lost connection.
//!
//! Worker processes are this test binary started again with
//! `MODULINK_TEST_WORKER` set, running the ignored `worker_process` entry.

mod durable;
mod server;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use chain_core::{Chain, Context, Error};
use chain_scaling::events::{
    DLQ_DELIVERIES_HEADER, DLQ_ERROR_HEADER, DLQ_SUBSCRIPTION_HEADER, Event, EventBus,
    EventBusError, FollowUps, JetStream, JetStreamConfig, Redelivery,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use server::{NatsServer, shared_or_private, uuid_like};

const WORKER_VARIABLE: &str = "MODULINK_TEST_WORKER";
const DEADLINE: Duration = Duration::from_secs(120);

/// What a worker process runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkerPlan {
    url: String,
    stream: String,
    prefix: String,
    worker: String,
    work_ms: u64,
    ack_wait_ms: u64,
    /// On disk, so the stream outlives a server restart.
    #[serde(default)]
    file_storage: bool,
}

impl WorkerPlan {
    fn config(&self) -> JetStreamConfig {
        let config = JetStreamConfig::new(&self.url)
            .stream(&self.stream)
            .subject_prefix(&self.prefix)
            .ack_wait(Duration::from_millis(self.ack_wait_ms))
            .concurrency(8);
        if self.file_storage {
            config
        } else {
            // A memory stream reserves its byte limit from the server's
            // JetStream memory: the default 1 GiB each would exhaust a
            // server shared by the whole suite.
            config
                .memory_storage()
                .retention(Duration::from_secs(3600), 64 << 20)
        }
    }
}

/// A fresh stream and subject prefix on the server, so tests sharing one
/// server never see each other's events.
fn plan(url: &str, work_ms: u64) -> WorkerPlan {
    let id = uuid_like();
    WorkerPlan {
        url: url.to_owned(),
        stream: format!("TEST_{id}"),
        prefix: format!("t{id}"),
        worker: String::new(),
        work_ms,
        ack_wait_ms: 2_000,
        file_storage: false,
    }
}

async fn bus(plan: &WorkerPlan, redelivery: Redelivery) -> EventBus<JetStream> {
    let transport = JetStream::connect(plan.config()).await.unwrap();
    EventBus::builder()
        .without_store()
        .redelivery(redelivery)
        .build_with(transport)
}

/// The chain every worker runs: some work, then its name and the delivery
/// number into the result.
fn work_chain(worker: String, work_ms: u64) -> Chain {
    Chain::named("worker").link(move |ctx: Context| {
        let worker = worker.clone();
        async move {
            if work_ms > 0 {
                tokio::time::sleep(Duration::from_millis(work_ms)).await;
            }
            let delivery: u32 = ctx.require("delivery")?;
            Ok(ctx.with("worker", worker).with("delivery_seen", delivery))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the worker processes that the multi-process tests start"]
async fn worker_process() {
    let plan: WorkerPlan = serde_json::from_str(
        &std::env::var(WORKER_VARIABLE).expect("started by a multi-process test"),
    )
    .unwrap();
    let bus = bus(&plan, Redelivery::default()).await;
    bus.subscribe("job", work_chain(plan.worker.clone(), plan.work_ms))
        .await
        .unwrap();
    println!("worker-ready");
    // The parent closes our stdin to ask for a graceful stop.
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count())
        .await
        .unwrap();
    bus.shutdown().await;
    println!("worker-stopped");
}

struct Worker {
    process: Child,
    stdin: Option<ChildStdin>,
}

impl Worker {
    /// Starts a worker process and waits until it has subscribed.
    fn start(plan: &WorkerPlan, name: &str) -> Worker {
        let plan = WorkerPlan {
            worker: name.to_owned(),
            ..plan.clone()
        };
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args(["worker_process", "--exact", "--ignored", "--nocapture"])
            .env(WORKER_VARIABLE, serde_json::to_string(&plan).unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let (ready, announced) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "worker-ready" {
                    let _ = ready.send(());
                }
            }
        });
        announced
            .recv_timeout(Duration::from_secs(60))
            .expect("worker process did not subscribe");
        let stdin = process.stdin.take();
        Worker { process, stdin }
    }

    /// SIGKILL: no shutdown, no acks, whatever was in flight.
    fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }

    /// Asks for a graceful stop and checks the process ended well.
    fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.process.wait().unwrap();
        assert!(status.success(), "worker exited with {status}");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Publishes `count` job events from four concurrent publishers.
async fn publish_jobs(bus: &EventBus<JetStream>, count: usize) -> HashSet<String> {
    let ids = publish_through_faults(bus, count, std::sync::Arc::default()).await;
    assert_eq!(ids.len(), count);
    ids
}

/// Reads every event on `subject` from the stream's start, in order.
async fn read_subject(
    plan: &WorkerPlan,
    subject: &str,
) -> impl futures_util::Stream<Item = async_nats::jetstream::Message> + use<> {
    let client = async_nats::connect(plan.url.as_str()).await.unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream(&plan.stream)
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            ..pull::OrderedConfig::default()
        })
        .await
        .unwrap();
    let messages = consumer.messages().await.unwrap();
    messages.map(|message| message.unwrap())
}

/// A completed job: the original id and what the worker put in its result.
struct Completion {
    original: String,
    worker: String,
    delivery: u64,
}

fn completion(message: &async_nats::jetstream::Message) -> Completion {
    let event: Event = serde_json::from_slice(&message.payload).unwrap();
    let result = &event.payload["result"];
    Completion {
        original: event.payload["original_event_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        worker: result["worker"].as_str().unwrap().to_owned(),
        delivery: result["delivery_seen"].as_u64().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_over_three_worker_processes_are_all_processed() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    let publisher = bus(&plan, Redelivery::default()).await;
    let workers: Vec<_> = (0..3)
        .map(|n| Worker::start(&plan, &format!("w{n}")))
        .collect();

    let published = publish_jobs(&publisher, 10_000).await;
    let completed_subject = format!("{}.job_completed", plan.prefix);
    let mut completions = read_subject(&plan, &completed_subject).await;
    let mut done = HashSet::new();
    let mut per_worker: HashMap<String, usize> = HashMap::new();
    tokio::time::timeout(DEADLINE, async {
        while done.len() < published.len() {
            let completion = completion(&completions.next().await.unwrap());
            *per_worker.entry(completion.worker).or_default() += 1;
            done.insert(completion.original);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of 10000 completed", done.len()));

    assert_eq!(done, published);
    assert_eq!(
        per_worker.len(),
        3,
        "every worker took a share: {per_worker:?}"
    );
    for worker in workers {
        worker.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 20);
    let publisher = bus(&plan, Redelivery::default()).await;
    let mut workers: Vec<_> = (0..3)
        .map(|n| Worker::start(&plan, &format!("w{n}")))
        .collect();

    let published = publish_jobs(&publisher, 3_000).await;
    let completed_subject = format!("{}.job_completed", plan.prefix);
    let mut completions = read_subject(&plan, &completed_subject).await;
    let mut done = HashSet::new();
    let mut redelivered = 0;
    let mut killed = false;
    tokio::time::timeout(DEADLINE, async {
        while done.len() < published.len() {
            let completion = completion(&completions.next().await.unwrap());
            if completion.delivery > 1 {
                redelivered += 1;
            }
            done.insert(completion.original);
            if !killed && done.len() >= 300 {
                // w0 is busy with up to 8 events (20 ms each) and holds
                // more pulled.
                workers[0].kill();
                killed = true;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of 3000 completed", done.len()));

    assert_eq!(done, published, "events were lost with the killed worker");
    assert!(
        redelivered > 0,
        "the killed worker's unacked events came back"
    );
    let killed_worker = workers.remove(0);
    drop(killed_worker);
    for worker in workers {
        worker.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_malformed_events_end_in_the_dead_letter_queue() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    let redelivery =
        Redelivery::new(3).with_backoff(Duration::from_millis(10), Duration::from_millis(20));
    let bus = bus(&plan, redelivery).await;
    let picky = Chain::named("picky").link(|ctx: Context| async move {
        let data: Value = ctx.require("event_data")?;
        if data == "poison" {
            return Err(Error::unavailable("cannot digest poison"));
        }
        Ok(ctx)
    });
    bus.subscribe("job", picky).await.unwrap();

    let mut poison = HashSet::new();
    for n in 0..5 {
        bus.publish(Event::new("job", json!(n))).await.unwrap();
    }
    for _ in 0..2 {
        poison.insert(
            bus.publish(Event::new("job", json!("poison")))
                .await
                .unwrap(),
        );
    }
    let raw = async_nats::connect(plan.url.as_str()).await.unwrap();
    async_nats::jetstream::new(raw)
        .publish(format!("{}.job", plan.prefix), "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let mut dead = read_subject(&plan, &format!("{}.job.dlq", plan.prefix)).await;
    let mut letters = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while letters.len() < 3 {
            letters.push(dead.next().await.unwrap());
        }
    })
    .await
    .expect("three dead letters");
    let header = |message: &async_nats::jetstream::Message, name: &str| -> String {
        message
            .headers
            .as_ref()
            .unwrap()
            .get(name)
            .unwrap()
            .to_string()
    };
    let mut dead_ids = HashSet::new();
    let mut malformed = 0;
    for letter in &letters {
        assert_eq!(header(letter, DLQ_SUBSCRIPTION_HEADER), "picky");
        match serde_json::from_slice::<Event>(&letter.payload) {
            Ok(event) => {
                assert_eq!(header(letter, DLQ_DELIVERIES_HEADER), "3");
                assert!(header(letter, DLQ_ERROR_HEADER).contains("cannot digest poison"));
                dead_ids.insert(event.id);
            }
            Err(_) => {
                assert_eq!(&letter.payload[..], b"{not json");
                assert!(header(letter, DLQ_ERROR_HEADER).contains("malformed event"));
                malformed += 1;
            }
        }
    }
    assert_eq!((dead_ids, malformed), (poison, 1));

    let mut failed = read_subject(&plan, &format!("{}.job_failed", plan.prefix)).await;
    let report: Event = serde_json::from_slice(&failed.next().await.unwrap().payload).unwrap();
    assert_eq!(report.payload["event_data"], "poison");
    bus.shutdown().await;
    let stats = bus.stats();
    assert_eq!(
        (stats.completed, stats.dead_lettered, stats.redelivered),
        (5, 2, 4)
    );
}

/// An event delivered more often than allowed without an outcome (here:
/// three deliveries handed back unread before the bus subscribes, as by
/// workers that keep dying) is dead-lettered unread, and reported on
/// `{type}_failed` like any other dead letter: observers that count
/// completions and failures must not wait for it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_given_up_unread_is_reported_as_failed() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    let redelivery =
        Redelivery::new(2).with_backoff(Duration::from_millis(10), Duration::from_millis(20));
    let bus = bus(&plan, redelivery).await;
    let published = bus.publish(Event::new("job", json!("x"))).await.unwrap();

    // The subscription's durable consumer, made first by hand, delivers
    // the event three times and gets it back unread each time.
    let raw = async_nats::jetstream::new(async_nats::connect(plan.url.as_str()).await.unwrap());
    let stream = raw.get_stream(&plan.stream).await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(chain_scaling::events::consumer_name("job", "handler")),
            filter_subject: format!("{}.job", plan.prefix),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_millis(2_000),
            ..pull::Config::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        let mut batch = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .unwrap();
        let message = batch.next().await.unwrap().unwrap();
        message
            .ack_with(async_nats::jetstream::AckKind::Nak(None))
            .await
            .unwrap();
    }

    let ran = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = Arc::clone(&ran);
    bus.subscribe(
        "job",
        Chain::named("handler").link_sync(move |ctx: Context| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(ctx)
        }),
    )
    .await
    .unwrap();
    let mut failed = read_subject(&plan, &format!("{}.job_failed", plan.prefix)).await;
    let report = tokio::time::timeout(DEADLINE, failed.next())
        .await
        .expect("a failure report")
        .unwrap();
    let report: Event = serde_json::from_slice(&report.payload).unwrap();
    assert_eq!(report.payload["original_event_id"], published.to_string());
    assert!(
        report.payload["error"]
            .as_str()
            .unwrap()
            .contains("without an outcome"),
        "{report:?}"
    );
    assert_eq!(report.payload["deliveries"], 4);
    let mut dead = read_subject(&plan, &format!("{}.job.dlq", plan.prefix)).await;
    let letter = tokio::time::timeout(DEADLINE, dead.next())
        .await
        .expect("a dead letter")
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Event>(&letter.payload).unwrap().id,
        published
    );
    bus.shutdown().await;
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(bus.stats().dead_lettered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_event_is_stored_once() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    let bus = bus(&plan, Redelivery::default()).await;
    let event = Event::new("job", json!(1));
    bus.publish(event.clone()).await.unwrap();
    bus.publish(event).await.unwrap();
    let client = async_nats::connect(plan.url.as_str()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(&plan.stream)
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_retried_and_reported() {
    let mut server = NatsServer::start();
    let plan = plan(&server.url(), 0);
    // On disk, so the stream outlives the server's restart.
    let config = JetStreamConfig::new(&plan.url)
        .stream(&plan.stream)
        .subject_prefix(&plan.prefix);
    let bus = EventBus::builder().build_with(JetStream::connect(config).await.unwrap());
    let mut changes = bus.transport().connection_changes();
    assert!(bus.transport().connection().connected);

    server.kill();
    tokio::time::timeout(DEADLINE, changes.wait_for(|report| !report.connected))
        .await
        .expect("the loss is reported")
        .unwrap();
    server.restart();
    let report = *tokio::time::timeout(DEADLINE, changes.wait_for(|report| report.connected))
        .await
        .expect("the client reconnects")
        .unwrap();
    assert_eq!((report.disconnects, report.reconnects), (1, 1));

    bus.publish(Event::new("job", json!(1))).await.unwrap();
    assert_eq!(bus.stats().published, 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let error = JetStream::connect(JetStreamConfig::new(&url))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&url), "{error}");

    // The error names the server, never the credentials in its URL.
    let secret_url = format!("nats://alice:s3cr3t@127.0.0.1:{port}");
    let error = JetStream::connect(JetStreamConfig::new(&secret_url))
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(
        shown.contains(&format!("nats://***@127.0.0.1:{port}")),
        "{shown}"
    );
}

#[tokio::test]
async fn try_publish_is_refused_with_a_reason() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    let bus = bus(&plan, Redelivery::default()).await;
    let error = bus.try_publish(Event::new("job", json!(1))).unwrap_err();
    assert!(error.to_string().contains("use publish"), "{error}");
}

/// A handler slower than `ack_wait` keeps its message: progress
/// acknowledgements stop the server giving it to another worker, so with
/// `ack_wait` 1 s, a 2.5 s handler and at most 2 deliveries it runs exactly
/// once and nothing is dead-lettered. Two buses (two connections, like two
/// worker processes) share the subscription, so a redelivery would reach
/// the one that is not running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_ack_wait_runs_once() {
    let (url, _server) = shared_or_private();
    let plan = WorkerPlan {
        ack_wait_ms: 1_000,
        ..plan(&url, 0)
    };
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let slow = || {
        let runs = std::sync::Arc::clone(&runs);
        Chain::named("slow").link(move |ctx: Context| {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
                Ok(ctx)
            }
        })
    };
    let first = bus(&plan, Redelivery::new(2)).await;
    let second = bus(&plan, Redelivery::new(2)).await;
    first.subscribe("job", slow()).await.unwrap();
    second.subscribe("job", slow()).await.unwrap();
    let id = first.publish(Event::new("job", json!(1))).await.unwrap();

    let mut completed = read_subject(&plan, &format!("{}.job_completed", plan.prefix)).await;
    let report: Event = tokio::time::timeout(DEADLINE, completed.next())
        .await
        .expect("the slow handler completed")
        .map(|message| serde_json::from_slice(&message.payload).unwrap())
        .unwrap();
    assert_eq!(report.payload["original_event_id"], id.to_string());
    first.shutdown().await;
    second.shutdown().await;
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "ran more than once"
    );
    let (a, b) = (first.stats(), second.stats());
    assert_eq!(
        (a.completed + b.completed, a.dead_lettered + b.dead_lettered),
        (1, 0)
    );
    let client = async_nats::connect(plan.url.as_str()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(&plan.stream)
        .await
        .unwrap();
    // The event and its report, no dead letter.
    assert_eq!(
        stream.info().await.unwrap().state.subjects_count,
        2,
        "a dead letter was written"
    );
}

/// (`a__b`, `c`) and (`a`, `b__c`) are two subscriptions with two durable
/// consumers: each handles its own event type only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_with_look_alike_names_get_their_own_consumers() {
    use chain_scaling::events::consumer_name;
    assert_ne!(consumer_name("a__b", "c"), consumer_name("a", "b__c"));
    assert_ne!(consumer_name("a-b", "c"), consumer_name("a", "b-c"));

    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    let bus = bus(&plan, Redelivery::default()).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = |label: &'static str| {
        let seen = std::sync::Arc::clone(&seen);
        Chain::named(label).link(move |ctx: Context| {
            let seen = std::sync::Arc::clone(&seen);
            async move {
                let data: String = ctx.require("event_data")?;
                seen.lock().unwrap().push(format!("{label}:{data}"));
                Ok(ctx)
            }
        })
    };
    bus.subscribe_as("a__b", "c", recorder("first"))
        .await
        .unwrap();
    bus.subscribe_as("a", "b__c", recorder("second"))
        .await
        .unwrap();
    bus.publish(Event::new("a__b", json!("x"))).await.unwrap();
    bus.publish(Event::new("a", json!("y"))).await.unwrap();

    let mut completed = read_subject(&plan, &format!("{}.a_completed", plan.prefix)).await;
    tokio::time::timeout(DEADLINE, completed.next())
        .await
        .expect("the `a` event was handled");
    let mut completed = read_subject(&plan, &format!("{}.a__b_completed", plan.prefix)).await;
    tokio::time::timeout(DEADLINE, completed.next())
        .await
        .expect("the `a__b` event was handled");
    bus.shutdown().await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["first:x", "second:y"]);
}

/// The stream is bounded by default (age and size), and a subscription
/// seen for the first time starts at new events; replaying the history is
/// an explicit choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_bounded_and_new_subscriptions_start_at_new_events() {
    let (url, _server) = shared_or_private();
    // On disk, where the test streams' memory limit does not apply: this
    // checks the transport's default limits.
    let plan = WorkerPlan {
        file_storage: true,
        ..plan(&url, 0)
    };
    let publisher = bus(&plan, Redelivery::default()).await;
    publisher
        .publish(Event::new("job", json!("old")))
        .await
        .unwrap();

    let client = async_nats::connect(plan.url.as_str()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(&plan.stream)
        .await
        .unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(config.max_bytes, 1 << 30);

    let labels = |name: &'static str, seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>| {
        Chain::named(name).link(move |ctx: Context| {
            let seen = std::sync::Arc::clone(&seen);
            async move {
                let data: String = ctx.require("event_data")?;
                seen.lock().unwrap().push(data);
                Ok(ctx)
            }
        })
    };
    let fresh_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let fresh = bus(&plan, Redelivery::default()).await;
    fresh
        .subscribe("job", labels("fresh", std::sync::Arc::clone(&fresh_seen)))
        .await
        .unwrap();
    let replay_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let replaying = EventBus::builder().without_store().build_with(
        JetStream::connect(plan.config().replay_history())
            .await
            .unwrap(),
    );
    replaying
        .subscribe(
            "job",
            labels("replaying", std::sync::Arc::clone(&replay_seen)),
        )
        .await
        .unwrap();

    publisher
        .publish(Event::new("job", json!("new")))
        .await
        .unwrap();
    let mut completed = read_subject(&plan, &format!("{}.job_completed", plan.prefix)).await;
    tokio::time::timeout(DEADLINE, async {
        for _ in 0..3 {
            completed.next().await.unwrap();
        }
    })
    .await
    .expect("three completions: fresh/new, replaying/old, replaying/new");
    fresh.shutdown().await;
    replaying.shutdown().await;
    assert_eq!(*fresh_seen.lock().unwrap(), ["new"], "history was replayed");
    let mut replayed = replay_seen.lock().unwrap().clone();
    replayed.sort();
    assert_eq!(replayed, ["new", "old"]);
}

/// Publishes `count` jobs from four publishers, each publish retried until
/// the server stores it (the same event id, so a retry is stored once).
async fn publish_through_faults(
    bus: &EventBus<JetStream>,
    count: usize,
    published: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> HashSet<String> {
    let publishers: Vec<_> = (0..4)
        .map(|publisher| {
            let bus = bus.clone();
            let published = std::sync::Arc::clone(&published);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in (publisher..count).step_by(4) {
                    let event = Event::new("job", json!({ "n": n }));
                    let id = loop {
                        match bus.publish(event.clone()).await {
                            Ok(id) => break id,
                            // The server is down: the client reconnects.
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    };
                    published.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    ids.push(id.to_string());
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for publisher in publishers {
        ids.extend(publisher.await.unwrap());
    }
    ids
}

/// The chaos test: `MODULINK_CHAOS_EVENTS` events (10,000 by default) over
/// three worker processes while nats-server is killed with SIGKILL and
/// restarted on the same store, and one worker is killed with SIGKILL.
/// Every event ends completed or dead-lettered, none is lost; duplicates
/// (at least once allows them) are counted and reported, and the bus
/// reports the reconnect. `scripts/chaos.sh` runs it bigger and records the
/// figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_server_and_worker_killed_mid_run_lose_nothing() {
    let count: usize = std::env::var("MODULINK_CHAOS_EVENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10_000);
    let mut server = NatsServer::start();
    let plan = WorkerPlan {
        file_storage: true,
        ..plan(&server.url(), 1)
    };
    let publisher = bus(&plan, Redelivery::default()).await;
    let mut workers: Vec<_> = (0..3)
        .map(|n| Worker::start(&plan, &format!("w{n}")))
        .collect();
    let started = std::time::Instant::now();

    let published = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let publishing = {
        let publisher = publisher.clone();
        let published = std::sync::Arc::clone(&published);
        tokio::spawn(async move { publish_through_faults(&publisher, count, published).await })
    };
    let progress = |share: usize| {
        let published = std::sync::Arc::clone(&published);
        async move {
            while published.load(std::sync::atomic::Ordering::SeqCst) < count * share / 100 {
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::time::timeout(DEADLINE, progress(30))
        .await
        .expect("30% published");
    // The broker dies mid-run and comes back on the same store.
    server.kill();
    let mut changes = publisher.transport().connection_changes();
    tokio::time::timeout(DEADLINE, changes.wait_for(|report| !report.connected))
        .await
        .expect("the loss is reported")
        .unwrap();
    server.restart();
    tokio::time::timeout(DEADLINE, changes.wait_for(|report| report.reconnects >= 1))
        .await
        .expect("the bus reconnects")
        .unwrap();
    tokio::time::timeout(DEADLINE, progress(60))
        .await
        .expect("60% published");
    // A worker dies mid-run, whatever it had in hand.
    workers[0].kill();

    let ids = tokio::time::timeout(DEADLINE, publishing)
        .await
        .expect("every event published")
        .unwrap();
    assert_eq!(ids.len(), count);

    let mut completions = read_subject(&plan, &format!("{}.job_completed", plan.prefix)).await;
    let mut dead = read_subject(&plan, &format!("{}.job.dlq", plan.prefix)).await;
    let mut completed = HashSet::new();
    let mut dead_lettered = HashSet::new();
    let mut reports = 0_usize;
    tokio::time::timeout(DEADLINE, async {
        while completed.len() + dead_lettered.len() < count {
            tokio::select! {
                Some(message) = completions.next() => {
                    reports += 1;
                    completed.insert(completion(&message).original);
                }
                Some(message) = dead.next() => {
                    let event: Event = serde_json::from_slice(&message.payload).unwrap();
                    dead_lettered.insert(event.id.to_string());
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} completed and {} dead-lettered of {count}",
            completed.len(),
            dead_lettered.len()
        )
    });
    let ended: HashSet<String> = completed.union(&dead_lettered).cloned().collect();
    assert_eq!(ended, ids, "events were lost");
    let duplicates = reports - completed.len();
    let connection = publisher.transport().connection();
    assert!(connection.reconnects >= 1, "{connection:?}");
    println!(
        "chaos: {count} events, {} completed, {} dead-lettered, {duplicates} duplicate completions ({:.2}%), \
         {} reconnects, {:.1} s",
        completed.len(),
        dead_lettered.len(),
        duplicates as f64 * 100.0 / count as f64,
        connection.reconnects,
        started.elapsed().as_secs_f64()
    );
    let killed = workers.remove(0);
    drop(killed);
    for worker in workers {
        worker.stop();
    }
}

/// `publish_all` keeps many publishes awaiting their acknowledgement at
/// once; every event is still stored by the server, handled, and counted
/// only once acknowledged. An invalid type refuses the whole batch, and a
/// closed bus refuses it with `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_all_pipelines_and_loses_nothing() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    // No `_completed` reports, so the stream holds exactly the jobs.
    let bus = EventBus::builder()
        .without_store()
        .follow_ups(FollowUps::Never)
        .build_with(JetStream::connect(plan.config()).await.unwrap());
    let handled = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let (done, mut all_done) = tokio::sync::mpsc::unbounded_channel();
    let seen = std::sync::Arc::clone(&handled);
    bus.subscribe(
        "job",
        Chain::named("record").link_sync(move |ctx: Context| {
            let n: u64 = ctx.require("event_data")?;
            let mut seen = seen.lock().unwrap();
            seen.insert(n);
            if seen.len() == 2_000 {
                let _ = done.send(());
            }
            Ok(ctx)
        }),
    )
    .await
    .unwrap();

    let error = bus
        .publish_all([Event::new("job", json!(0)), Event::new("", json!(1))])
        .await
        .unwrap_err();
    assert!(
        matches!(error, EventBusError::InvalidEventType { .. }),
        "{error}"
    );

    // Eight windows' worth, so the window fills and drains many times.
    let events: Vec<Event> = (0..2_000).map(|n| Event::new("job", json!(n))).collect();
    let expected: Vec<_> = events.iter().map(|event| event.id).collect();
    assert_eq!(bus.publish_all(events).await.unwrap(), expected);
    assert_eq!(bus.stats().published, 2_000);
    let client = async_nats::connect(plan.url.as_str()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(&plan.stream)
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2_000);
    tokio::time::timeout(DEADLINE, all_done.recv())
        .await
        .expect("every event is handled");

    bus.shutdown().await;
    let error = bus
        .publish_all([Event::new("job", json!(1))])
        .await
        .unwrap_err();
    assert!(matches!(error, EventBusError::Closed), "{error}");
}

/// A subscription's consumer lets as many deliveries be unacknowledged as
/// `max_in_flight` says, across every process sharing it; by default four
/// times one process's handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_sets_the_consumers_limit() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    let raw = async_nats::jetstream::new(async_nats::connect(plan.url.as_str()).await.unwrap());
    for (config, expected) in [
        (plan.config(), 8 * 4),
        (plan.config().max_in_flight(1_000), 1_000),
    ] {
        let bus = EventBus::builder()
            .without_store()
            .build_with(JetStream::connect(config).await.unwrap());
        let name = format!("limit{expected}");
        bus.subscribe("job", Chain::named(name.clone()).link_sync(Ok))
            .await
            .unwrap();
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = raw
            .get_stream(&plan.stream)
            .await
            .unwrap()
            .get_consumer(&chain_scaling::events::consumer_name("job", &name))
            .await
            .unwrap();
        assert_eq!(
            consumer.info().await.unwrap().config.max_ack_pending,
            expected
        );
        bus.shutdown().await;
    }
}

/// How many handlers run at once, and the most that ever did.
#[derive(Default)]
struct AtOnce {
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl AtOnce {
    /// One more running, until the guard drops.
    fn enter(self: &Arc<Self>) -> impl Drop {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        struct Leave(Arc<AtOnce>);
        impl Drop for Leave {
            fn drop(&mut self) {
                self.0
                    .running
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Leave(Arc::clone(self))
    }

    fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Receives `count` signals, each within `DEADLINE`; fails with `what`.
async fn receive<T>(
    signals: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    count: usize,
    what: &str,
) {
    for _ in 0..count {
        tokio::time::timeout(DEADLINE, signals.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: timed out"))
            .unwrap_or_else(|| panic!("{what}: the senders are gone"));
    }
}

/// A worker asks the server only for as many events as it has free
/// handlers: none waits delivered in its process (its `ack_wait` running)
/// while every handler is busy, so another worker can take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_only_as_many_events_as_it_has_free_handlers() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    // The plan's concurrency: 8 handlers.
    const HANDLERS: usize = 8;
    const EVENTS: usize = 20;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
    let at_once = Arc::new(AtOnce::default());
    let chain = {
        let (gate, at_once) = (Arc::clone(&gate), Arc::clone(&at_once));
        Chain::named("gated").link(move |ctx: Context| {
            let (gate, at_once) = (Arc::clone(&gate), Arc::clone(&at_once));
            let started = started.clone();
            async move {
                let _running = at_once.enter();
                started.send(()).unwrap();
                gate.acquire().await.unwrap().forget();
                Ok(ctx)
            }
        })
    };
    let bus = bus(&plan, Redelivery::default()).await;
    bus.subscribe("job", chain).await.unwrap();
    bus.publish_all((0..EVENTS).map(|n| Event::new("job", json!(n))))
        .await
        .unwrap();
    receive(&mut starts, HANDLERS, "a handler started").await;
    let raw = async_nats::jetstream::new(async_nats::connect(plan.url.as_str()).await.unwrap());
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = raw
        .get_stream(&plan.stream)
        .await
        .unwrap()
        .get_consumer(&chain_scaling::events::consumer_name("job", "gated"))
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(
        (info.num_ack_pending, info.num_pending),
        (HANDLERS, (EVENTS - HANDLERS) as u64),
        "delivered beyond the free handlers"
    );
    gate.add_permits(EVENTS);
    // Every event starts once the gate is open (the first eight already did).
    receive(&mut starts, EVENTS - HANDLERS, "every event started").await;
    bus.shutdown().await;
    assert_eq!(at_once.most(), HANDLERS);
    assert_eq!(bus.stats().completed, EVENTS as u64);
}

/// Handlers that compute before their first wait still run on several
/// threads at once: the consume loop runs short handlers inline, but not
/// ones that would hold it and run one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_that_compute_run_in_parallel() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    const EVENTS: usize = 40;
    let at_once = Arc::new(AtOnce::default());
    let (finished, mut finishes) = tokio::sync::mpsc::unbounded_channel();
    let chain = {
        let at_once = Arc::clone(&at_once);
        Chain::named("compute").link_sync(move |ctx: Context| {
            let running = at_once.enter();
            // 3 ms of work without a wait: a loop that ran these inline
            // would run them one at a time.
            let until = std::time::Instant::now() + Duration::from_millis(3);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            drop(running);
            finished.send(()).unwrap();
            Ok(ctx)
        })
    };
    let bus = bus(&plan, Redelivery::default()).await;
    bus.subscribe("job", chain).await.unwrap();
    bus.publish_all((0..EVENTS).map(|n| Event::new("job", json!(n))))
        .await
        .unwrap();
    receive(&mut finishes, EVENTS, "every event handled").await;
    bus.shutdown().await;
    assert!(
        at_once.most() >= 2,
        "compute-heavy handlers ran one at a time"
    );
    assert_eq!(bus.stats().completed, EVENTS as u64);
}

/// A consumer created beforehand with limits on pull requests below what
/// this process asks for (an operator's settings, which an existing
/// consumer keeps) still delivers: the server refuses outright, and for
/// ever, a pull for more messages than its `max_batch` or waiting longer
/// than its `max_expires`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_limiting_pull_requests_still_delivers() {
    let (url, _server) = shared_or_private();
    let plan = plan(&url, 0);
    const EVENTS: usize = 12;
    let bus = EventBus::builder()
        .without_store()
        .build_with(JetStream::connect(plan.config()).await.unwrap());
    let raw = async_nats::jetstream::new(async_nats::connect(plan.url.as_str()).await.unwrap());
    let stream = raw.get_stream(&plan.stream).await.unwrap();
    // The plan's 8 handlers ask for 4 or 8 at a time, waiting 1 s.
    let limits = [
        (
            "few_per_pull",
            pull::Config {
                max_batch: 2,
                ..pull::Config::default()
            },
        ),
        (
            "short_pulls",
            pull::Config {
                max_expires: Duration::from_millis(500),
                ..pull::Config::default()
            },
        ),
    ];
    let (finished, mut finishes) = tokio::sync::mpsc::unbounded_channel();
    for (name, limit) in limits {
        stream
            .create_consumer(pull::Config {
                durable_name: Some(chain_scaling::events::consumer_name("job", name)),
                filter_subject: format!("{}.job", plan.prefix),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ..limit
            })
            .await
            .unwrap();
        let finished = finished.clone();
        let chain = Chain::named(name).link_sync(move |ctx: Context| {
            finished.send(name).unwrap();
            Ok(ctx)
        });
        bus.subscribe("job", chain).await.unwrap();
    }
    bus.publish_all((0..EVENTS).map(|n| Event::new("job", json!(n))))
        .await
        .unwrap();
    let mut handled = HashMap::new();
    for _ in 0..2 * EVENTS {
        let name = tokio::time::timeout(Duration::from_secs(30), finishes.recv())
            .await
            .unwrap_or_else(|_| panic!("not every event handled: {handled:?}"))
            .unwrap();
        *handled.entry(name).or_insert(0) += 1;
    }
    bus.shutdown().await;
    assert_eq!(
        handled,
        HashMap::from([("few_per_pull", EVENTS), ("short_pulls", EVENTS)])
    );
}
