use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chain_core::middleware::{LinkTimings, from_fn, timing};
use chain_core::{Chain, Context, Error, ErrorKind, Middleware, Next, Step, named};

use crate::support::Recorder;

fn recording(recorder: &Recorder, label: &'static str) -> impl Middleware<Context> {
    let recorder = recorder.clone();
    from_fn(move |ctx: Context, next: Next<Context>| {
        let recorder = recorder.clone();
        async move {
            recorder.record(format!("{label}:before"));
            let out = next.run(ctx).await;
            recorder.record(format!("{label}:after"));
            out
        }
    })
    .named(label)
}

#[tokio::test]
async fn first_registered_is_outermost_and_around_wraps_everything() {
    let recorder = Recorder::default();
    let link_recorder = recorder.clone();
    let chain = Chain::new()
        .around_each(recording(&recorder, "each1"))
        .around(recording(&recorder, "around"))
        .step(
            Step::new(move |ctx: Context| {
                let recorder = link_recorder.clone();
                async move {
                    recorder.record("link");
                    Ok(ctx)
                }
            })
            .around(recording(&recorder, "own")),
        )
        .around_each(recording(&recorder, "each2"));
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(
        recorder.entries(),
        [
            "around:before",
            "each1:before",
            "each2:before",
            "own:before",
            "link",
            "own:after",
            "each2:after",
            "each1:after",
            "around:after",
        ]
    );
}

#[tokio::test]
async fn chain_middleware_wraps_every_link_and_step_middleware_one() {
    let recorder = Recorder::default();
    let chain = Chain::new()
        .around_each(recording(&recorder, "each"))
        .link_sync(Ok)
        .step(Step::sync(Ok).around(recording(&recorder, "own")))
        .link_sync(Ok);
    chain.execute(Context::new()).await.unwrap();
    let entries = recorder.entries();
    assert_eq!(entries.iter().filter(|e| *e == "each:before").count(), 3);
    assert_eq!(entries.iter().filter(|e| *e == "own:before").count(), 1);
}

#[tokio::test]
async fn middleware_can_short_circuit() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let chain = Chain::named("admin")
        .around_each(from_fn(|ctx: Context, next: Next<Context>| async move {
            match ctx.get::<String>("role")?.as_deref() {
                Some("admin") => next.run(ctx).await,
                Some(_) => Err(Error::forbidden("admin role required")),
                None => Err(Error::unauthorized("no credentials")),
            }
        }))
        .link_sync(move |ctx: Context| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(ctx)
        });
    let anonymous = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(anonymous.kind(), ErrorKind::Unauthorized);
    let user = chain
        .execute(Context::new().with("role", "user"))
        .await
        .unwrap_err();
    assert_eq!(user.kind(), ErrorKind::Forbidden);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    chain
        .execute(Context::new().with("role", "admin"))
        .await
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn middleware_can_transform_before_and_after() {
    let chain = Chain::new()
        .around_each(from_fn(|ctx: Context, next: Next<Context>| async move {
            let out = next.run(ctx.with("seen_by_link", true)).await?;
            Ok(out.with("after", "added"))
        }))
        .link_sync(|ctx: Context| {
            let seen: bool = ctx.require("seen_by_link")?;
            Ok(ctx.with("link_saw_flag", seen))
        });
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.get::<bool>("link_saw_flag").unwrap(), Some(true));
    assert_eq!(
        out.get::<String>("after").unwrap().as_deref(),
        Some("added")
    );
}

#[tokio::test]
async fn middleware_can_call_next_more_than_once() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let retry = from_fn(|ctx: Context, next: Next<Context>| async move {
        let mut last = None;
        for attempt in 1..=3 {
            match next.clone().run(ctx.clone().with("attempt", attempt)).await {
                Ok(out) => return Ok(out),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap())
    });
    let chain = Chain::new()
        .around_each(retry)
        .link_sync(move |ctx: Context| {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(Error::unavailable("flaky"));
            }
            Ok(ctx)
        });
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(out.get::<u32>("attempt").unwrap(), Some(3));
}

#[tokio::test]
async fn middleware_sees_the_link_info() {
    let recorder = Recorder::default();
    let seen = recorder.clone();
    let chain = Chain::named("orders")
        .around_each(from_fn(move |ctx: Context, next: Next<Context>| {
            let link = next.link().unwrap();
            seen.record(format!("{}/{}#{}", link.chain(), link.name(), link.index()));
            next.run(ctx)
        }))
        .link(named("validate", |ctx: Context| async move { Ok(ctx) }))
        .link(named("charge", |ctx: Context| async move { Ok(ctx) }));
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(recorder.entries(), ["orders/validate#0", "orders/charge#1"]);
}

#[tokio::test]
async fn around_middleware_sees_no_link_but_the_chain() {
    let recorder = Recorder::default();
    let seen = recorder.clone();
    let chain = Chain::named("orders")
        .around(from_fn(move |ctx: Context, next: Next<Context>| {
            seen.record(format!("{}:{}", next.chain_name(), next.link().is_none()));
            next.run(ctx)
        }))
        .link_sync(Ok);
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(recorder.entries(), ["orders:true"]);
}

#[tokio::test]
async fn timing_records_each_link_and_the_whole_execution() {
    let chain = Chain::named("timed")
        .around(timing())
        .around_each(timing())
        .link(named("a", |ctx: Context| async move { Ok(ctx) }))
        .link(named("b", |ctx: Context| async move {
            tokio::task::yield_now().await;
            Ok(ctx)
        }));
    let out = chain.execute(Context::new()).await.unwrap();
    let timings = out.ext::<LinkTimings>().unwrap();
    let recorded: Vec<(&str, Option<usize>)> =
        timings.iter().map(|t| (&*t.name, t.index)).collect();
    assert_eq!(recorded, [("a", Some(0)), ("b", Some(1)), ("timed", None)]);
    let whole = timings.iter().last().unwrap().duration;
    assert!(whole >= timings.iter().take(2).map(|t| t.duration).sum());
}

#[tokio::test]
async fn optional_middleware_none_passes_through() {
    let absent: Option<chain_core::middleware::Timing> = None;
    let chain = Chain::new()
        .around_each(absent)
        .link_sync(|ctx: Context| Ok(ctx.with("ran", true)));
    let out = chain.execute(Context::new()).await.unwrap();
    assert!(out.contains_key("ran"));
    assert!(out.ext::<LinkTimings>().is_none());
}

#[cfg(feature = "tracing")]
mod logging {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use chain_core::middleware::logging;
    use chain_core::{Chain, Context, Error, named};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn logged_lines(as_observer: bool) -> Vec<String> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let chain = Chain::named("shop");
        let chain = if as_observer {
            chain.observe(logging())
        } else {
            chain.around_each(logging())
        };
        let chain = chain
            .link(named("validate", |ctx: Context| async move { Ok(ctx) }))
            .link(named("charge", |_ctx: Context| async {
                Err::<Context, _>(Error::unavailable("card declined"))
            }));
        let _ = chain.execute(Context::new()).await;

        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        output.lines().map(str::to_owned).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn logging_emits_an_event_per_link_with_its_outcome() {
        for as_observer in [false, true] {
            let lines = logged_lines(as_observer).await;
            let output = lines.join("\n");
            assert_eq!(lines.len(), 2, "{output}");
            assert!(
                lines[0].contains("DEBUG") && lines[0].contains("link succeeded"),
                "{output}"
            );
            assert!(
                lines[0].contains("link=\"validate\"") || lines[0].contains("link=validate"),
                "{output}"
            );
            assert!(
                lines[1].contains("WARN") && lines[1].contains("link failed"),
                "{output}"
            );
            assert!(
                lines[1].contains("card declined") && lines[1].contains("unavailable"),
                "{output}"
            );
        }
    }
}

mod observers {
    use std::sync::Mutex;
    use std::time::Duration;

    use chain_core::middleware::{LinkInfo, LinkTimings, Observer, timing};
    use chain_core::{Chain, Context, Error, ErrorKind, Result, named};

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, usize, bool)>>);

    impl Observer<Context> for Seen {
        fn on_link(&self, link: &LinkInfo, _elapsed: Duration, outcome: &mut Result<Context>) {
            self.0
                .lock()
                .unwrap()
                .push((link.name().to_owned(), link.index(), outcome.is_ok()));
        }
    }

    struct Shared(std::sync::Arc<Seen>);

    impl Observer<Context> for Shared {
        fn on_link(&self, link: &LinkInfo, elapsed: Duration, outcome: &mut Result<Context>) {
            self.0.on_link(link, elapsed, outcome);
        }
    }

    #[tokio::test]
    async fn observers_see_every_link_that_ran_and_its_outcome() {
        let seen = std::sync::Arc::new(Seen::default());
        let chain = Chain::named("observed")
            .observe(Shared(seen.clone()))
            .link(named("a", |ctx: Context| async move { Ok(ctx) }))
            .when(
                |_: &Context| false,
                named("skipped", |ctx: Context| async move { Ok(ctx) }),
            )
            .link(named("fails", |_ctx: Context| async {
                Err::<Context, _>(Error::unavailable("down"))
            }));
        let err = chain.execute(Context::new()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(
            *seen.0.lock().unwrap(),
            [("a".to_owned(), 0, true), ("fails".to_owned(), 2, false)]
        );
    }

    #[tokio::test]
    async fn an_observer_may_amend_the_outcome() {
        struct Stamp;
        impl Observer<Context> for Stamp {
            fn on_link(&self, link: &LinkInfo, _elapsed: Duration, outcome: &mut Result<Context>) {
                if let Ok(ctx) = outcome {
                    ctx.insert("last_link", link.name().to_owned());
                }
            }
        }
        let chain = Chain::new()
            .observe(Stamp)
            .link(named("only", |ctx: Context| async move { Ok(ctx) }));
        let out = chain.execute(Context::new()).await.unwrap();
        assert_eq!(
            out.get::<String>("last_link").unwrap().as_deref(),
            Some("only")
        );
    }

    #[tokio::test]
    async fn timing_as_an_observer_measures_each_link() {
        let chain = Chain::named("timed")
            .observe(timing())
            .link(named("quick", |ctx: Context| async move { Ok(ctx) }))
            .link(named("slower", |ctx: Context| async move {
                // Real work, not a sleep: the duration must cover it.
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_millis(2) {
                    std::hint::spin_loop();
                }
                Ok(ctx)
            }));
        let out = chain.execute(Context::new()).await.unwrap();
        let timings = out.ext::<LinkTimings>().unwrap();
        let names: Vec<&str> = timings.iter().map(|t| &*t.name).collect();
        assert_eq!(names, ["quick", "slower"]);
        assert!(timings.iter().nth(1).unwrap().duration >= Duration::from_millis(2));
        assert_eq!(chain.inspect().observers, ["timing"]);
    }
}
