//! In-process event throughput with the system allocator, the default
//! users get: publish to handled, the bus against a hand-written mpsc
//! fan-out, and the cost as subscriptions per event type grow (see
//! `support/throughput.rs`). `events_mimalloc` runs the same on mimalloc.
//!
//! Run with `cargo bench -p chain-scaling --bench events`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/done.rs"]
mod done;
#[path = "support/throughput.rs"]
mod throughput;

fn system_allocator(c: &mut Criterion) {
    throughput::throughput(c, "events_publish_to_handled");
}

criterion_group! {
    name = benches;
    config = throughput::comparison_config();
    targets = system_allocator
}
criterion_group! {
    name = curves;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = throughput::subscriptions_per_type
}
criterion_main!(benches, curves);
