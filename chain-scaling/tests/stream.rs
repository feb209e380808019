//! Stream and batch processing: order, bounded concurrency, backpressure,
//! error policies, and memory-driven back-off.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chain_core::{Chain, Error, ErrorKind};
use chain_scaling::stream::{MemoryMonitor, StreamProcessor, process_in_batches};
use futures_util::{StreamExt, stream};

/// Item `n` takes `10 - n % 10` ms: later items finish first.
fn uneven() -> Chain<u64> {
    Chain::named("uneven").link(|n: u64| async move {
        tokio::time::sleep(Duration::from_millis(10 - n % 10)).await;
        Ok(n)
    })
}

#[tokio::test(start_paused = true)]
async fn output_keeps_input_order_even_when_items_finish_out_of_order() {
    let out: Vec<u64> = StreamProcessor::new(uneven())
        .concurrency(8)
        .process(stream::iter(0..100))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(out, (0..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn unordered_output_follows_completion() {
    let out: Vec<u64> = StreamProcessor::new(uneven())
        .concurrency(10)
        .unordered()
        .process(stream::iter(0..10))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(out, (0..10).rev().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_the_configured_number_of_items_run_at_once() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (Arc::clone(&running), Arc::clone(&most));
    let chain = Chain::<u64>::named("tracked").link(move |n: u64| {
        let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
        async move {
            let current = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(current, Ordering::SeqCst);
            tokio::task::yield_now().await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(n)
        }
    });
    let count = StreamProcessor::new(chain)
        .concurrency(8)
        .process(stream::iter(0..2_000))
        .count()
        .await;
    assert_eq!(count, 2_000);
    let most = most.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most}");
}

#[tokio::test]
async fn a_consumer_that_stops_reading_stops_the_producer() {
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&pulled);
    let input = stream::iter(0..1_000_000u64).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let chain = Chain::<u64>::named("id").link_sync(Ok);
    let mut output = StreamProcessor::new(chain).concurrency(4).process(input);
    for expected in 0..3 {
        assert_eq!(output.next().await.unwrap().unwrap(), expected);
    }
    // Three taken, at most four more in the chain: the rest never read.
    assert!(pulled.load(Ordering::Relaxed) <= 3 + 4, "{pulled:?}");
}

fn fails_on_multiples_of_five() -> Chain<u64> {
    Chain::named("picky").link_sync(|n: u64| {
        if n % 5 == 4 {
            return Err(Error::validation(format!("{n} is unwelcome")));
        }
        Ok(n)
    })
}

#[tokio::test]
async fn by_default_the_first_failure_ends_the_stream_with_its_error() {
    let out: Vec<_> = StreamProcessor::new(fails_on_multiples_of_five())
        .concurrency(3)
        .process(stream::iter(0..20))
        .collect()
        .await;
    assert_eq!(out.len(), 5, "four items, then the error");
    let error = out[4].as_ref().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Validation);
    assert!(
        error.to_string().contains("stream item #4 failed"),
        "{error}"
    );
}

#[tokio::test]
async fn failed_items_can_go_to_a_sink_while_the_rest_flows_on() {
    let failed = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&failed);
    let out: Vec<u64> = StreamProcessor::new(fails_on_multiples_of_five())
        .concurrency(3)
        .errors_to(move |item| sink.lock().unwrap().push((item.index, item.error.kind())))
        .process(stream::iter(0..20))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(out.len(), 16);
    assert!(out.iter().all(|n| n % 5 != 4));
    let failed = failed.lock().unwrap();
    let indices: Vec<u64> = failed.iter().map(|(index, _)| *index).collect();
    assert_eq!(indices, [4, 9, 14, 19]);
    assert!(
        failed
            .iter()
            .all(|(_, kind)| *kind == ErrorKind::Validation)
    );
}

#[tokio::test]
async fn memory_above_the_limit_lowers_concurrency_and_says_so() {
    // A limit of one byte: every sample is above it.
    let monitor = MemoryMonitor::new(1).with_interval(Duration::ZERO);
    let chain = Chain::<u64>::named("id").link_sync(Ok);
    let mut output = StreamProcessor::new(chain)
        .concurrency(16)
        .memory(monitor.clone())
        .process(stream::iter(0..4_096));
    let mut count = 0;
    while let Some(item) = output.next().await {
        item.unwrap();
        count += 1;
    }
    assert_eq!(
        count, 4_096,
        "throttling slows processing, it loses nothing"
    );
    assert_eq!(output.current_concurrency(), 1);
    let report = monitor.report();
    assert_eq!(report.throttled, 4, "16 -> 8 -> 4 -> 2 -> 1");
    assert_eq!(report.lowest_concurrency, Some(1));
    assert!(report.samples >= 4 && report.peak_bytes > 0);
}

#[tokio::test]
async fn memory_under_the_limit_leaves_concurrency_alone() {
    let monitor = MemoryMonitor::new(u64::MAX).with_interval(Duration::ZERO);
    let chain = Chain::<u64>::named("id").link_sync(Ok);
    let mut output = StreamProcessor::new(chain)
        .concurrency(16)
        .memory(monitor.clone())
        .process(stream::iter(0..1_024));
    while output.next().await.is_some() {}
    assert_eq!(output.current_concurrency(), 16);
    assert_eq!(monitor.report().throttled, 0);
}

#[tokio::test]
async fn batches_run_in_order_and_a_failing_batch_is_named() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sizes);
    let sum_pairs = Chain::<Vec<u64>>::named("scale").link_sync(move |batch: Vec<u64>| {
        seen.lock().unwrap().push(batch.len());
        if batch.contains(&13) {
            return Err(Error::validation("13 is unlucky"));
        }
        Ok(batch.into_iter().map(|n| n * 10).collect())
    });
    let out = process_in_batches(&sum_pairs, (0..10).collect(), 4)
        .await
        .unwrap();
    assert_eq!(out, (0..10).map(|n| n * 10).collect::<Vec<_>>());
    assert_eq!(*sizes.lock().unwrap(), [4, 4, 2]);

    let error = process_in_batches(&sum_pairs, (0..20).collect(), 4)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("batch #3 (items 12..16) failed"),
        "{error}"
    );
}

mod as_links {
    use super::*;
    use chain_core::Context;
    use chain_scaling::stream::{BatchLink, MemoryGrade, StreamLink, essential_keys};

    #[tokio::test]
    async fn a_batch_link_processes_a_field_in_batches_of_the_size_given() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let double = Chain::<Vec<u64>>::named("double").link_sync(move |batch: Vec<u64>| {
            seen.lock().unwrap().push(batch.len());
            Ok(batch.into_iter().map(|n| n * 2).collect())
        });
        let chain = Chain::named("numbers")
            .link(BatchLink::new("data", "processed_data", 100, double))
            .link(essential_keys(["processed_data"]));
        let out = chain
            .execute(
                Context::new()
                    .with("data", (0..1_050).collect::<Vec<u64>>())
                    .with("note", "x"),
            )
            .await
            .unwrap();
        let processed: Vec<u64> = out.require("processed_data").unwrap();
        assert_eq!(processed, (0..1_050).map(|n| n * 2).collect::<Vec<u64>>());
        let mut expected = vec![100; 10];
        expected.push(50);
        assert_eq!(*sizes.lock().unwrap(), expected);
        // The projection dropped the input and the note.
        assert_eq!(out.keys().collect::<Vec<_>>(), ["processed_data"]);

        let missing = chain.execute(Context::new()).await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Validation);
        assert!(missing.to_string().contains("no field `data`"), "{missing}");
        let wrong = chain
            .execute(Context::new().with("data", "not a list"))
            .await
            .unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::Validation);
    }

    #[tokio::test]
    async fn a_stream_link_bounds_concurrency_and_fails_or_sinks_bad_items() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (now, high) = (running.clone(), most.clone());
        let slow = Chain::<u64>::named("slow").link(move |n: u64| {
            let (now, high) = (now.clone(), high.clone());
            async move {
                let at = now.fetch_add(1, Ordering::SeqCst) + 1;
                high.fetch_max(at, Ordering::SeqCst);
                tokio::task::yield_now().await;
                now.fetch_sub(1, Ordering::SeqCst);
                if n == 7 {
                    return Err(Error::validation("seven is refused"));
                }
                Ok(n + 1)
            }
        });
        let failing = Chain::named("c").link(StreamLink::new(
            "items",
            "out",
            StreamProcessor::new(slow.clone()).concurrency(4),
        ));
        let error = failing
            .execute(Context::new().with("items", (0..20).collect::<Vec<u64>>()))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("item #7"), "{error:#}");
        assert!(most.load(Ordering::SeqCst) <= 4);

        let sunk = Arc::new(AtomicU64::new(u64::MAX));
        let sink = sunk.clone();
        let tolerant = Chain::named("c").link(StreamLink::new(
            "items",
            "out",
            StreamProcessor::new(slow)
                .concurrency(4)
                .errors_to(move |item| sink.store(item.index, Ordering::SeqCst)),
        ));
        let out = tolerant
            .execute(Context::new().with("items", (0..20).collect::<Vec<u64>>()))
            .await
            .unwrap();
        let expected: Vec<u64> = (0..20).filter(|n| *n != 7).map(|n| n + 1).collect();
        assert_eq!(out.require::<Vec<u64>>("out").unwrap(), expected);
        assert_eq!(sunk.load(Ordering::SeqCst), 7);
    }

    #[tokio::test]
    async fn the_memory_report_has_minimum_peak_change_per_execution_and_grade() {
        let monitor = MemoryMonitor::new(u64::MAX / 4);
        assert_eq!(monitor.report().grade, MemoryGrade::Unknown);
        // Each execution keeps 8 MB alive (touched, so resident) until the
        // test ends.
        let kept = Arc::new(Mutex::new(Vec::new()));
        let keep = kept.clone();
        let chain = Chain::named("grows")
            .link_sync(move |ctx: Context| {
                keep.lock().unwrap().push(vec![1_u8; 8 << 20]);
                Ok(ctx)
            })
            .around(monitor.around_executions());
        for _ in 0..4 {
            chain.execute(Context::new()).await.unwrap();
        }
        let report = monitor.report();
        assert_eq!(report.executions, 4);
        assert_eq!(report.samples, 8);
        let change = report.average_change_per_execution_bytes;
        assert!((7 << 20..=9 << 20).contains(&change), "{change}");
        assert!(report.min_bytes > 0 && report.min_bytes + (24 << 20) <= report.peak_bytes);
        assert_eq!(report.grade, MemoryGrade::Good);
        drop(kept);

        // Grades from the limit.
        assert_eq!(MemoryGrade::of(40, 100), MemoryGrade::Good);
        assert_eq!(MemoryGrade::of(60, 100), MemoryGrade::Fair);
        assert_eq!(MemoryGrade::of(90, 100), MemoryGrade::NeedsOptimization);
        assert_eq!(MemoryGrade::of(101, 100), MemoryGrade::OverLimit);
        let tight = MemoryMonitor::new(1 << 20);
        tight.sample().unwrap();
        assert_eq!(tight.report().grade, MemoryGrade::OverLimit);
    }
}
