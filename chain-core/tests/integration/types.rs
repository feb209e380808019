use std::future::Future;

use chain_core::{Chain, Context, Error, Extensions, Link, Middleware, Next, Parallel, Step};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}
fn static_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Chain<Context>>();
    send_sync::<Context>();
    send_sync::<Extensions>();
    send_sync::<Next<Context>>();
    send_sync::<Parallel>();
    send_sync::<Step<Context>>();
    static_error::<Error>();
}

#[test]
fn execute_futures_are_send() {
    let chain = Chain::<Context>::new();
    let future = chain.execute(Context::new());
    send(&future);
    fn is_future<F: Future>(_: &F) {}
    is_future(&future);
}

#[test]
fn errors_and_results_stay_small() {
    assert_eq!(size_of::<Error>(), size_of::<usize>());
    assert_eq!(size_of::<Chain<Context>>(), size_of::<usize>());
}

fn _link_is_object_safe(_: Box<dyn Link<Context>>) {}
fn _middleware_is_object_safe(_: Box<dyn Middleware<Context>>) {}
