//! The `events` benchmark's publish-to-handled comparison on mimalloc
//! instead of the system allocator: events are allocated on the
//! publisher's thread and freed on the workers', which glibc's allocator
//! serializes on an arena lock and mimalloc does not.
//!
//! Run with `cargo bench -p chain-scaling --bench events_mimalloc`.

use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/done.rs"]
mod done;
#[path = "support/throughput.rs"]
mod throughput;

fn mimalloc(c: &mut Criterion) {
    throughput::throughput(c, "events_publish_to_handled_mimalloc");
}

criterion_group! {
    name = benches;
    config = throughput::comparison_config();
    targets = mimalloc
}
criterion_main!(benches);
