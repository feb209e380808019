use std::time::Duration;

use chain_core::{Chain, Context, Result, named};
use tokio::sync::oneshot;

async fn double(ctx: Context) -> Result<Context> {
    let id: u64 = ctx.require("id")?;
    tokio::task::yield_now().await;
    Ok(ctx.with("doubled", id * 2))
}

async fn check(ctx: Context) -> Result<Context> {
    let id: u64 = ctx.require("id")?;
    let doubled: u64 = ctx.require("doubled")?;
    tokio::task::yield_now().await;
    Ok(ctx.with("consistent", doubled == id * 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chain_serves_a_thousand_concurrent_executions_without_sharing_context() {
    let chain = Chain::named("shared").link(double).link(check);
    let tasks: Vec<_> = (0..1_000_u64)
        .map(|id| {
            let chain = chain.clone();
            tokio::spawn(async move { chain.execute(Context::new().with("id", id)).await })
        })
        .collect();
    for (id, task) in tasks.into_iter().enumerate() {
        let out = task.await.unwrap().unwrap();
        assert_eq!(out.get::<u64>("id").unwrap(), Some(id as u64));
        assert_eq!(out.get::<u64>("doubled").unwrap(), Some(id as u64 * 2));
        assert_eq!(out.get::<bool>("consistent").unwrap(), Some(true));
        assert_eq!(out.len(), 3, "no fields leak between executions");
    }
}

struct SignalOnDrop(Option<oneshot::Sender<()>>);

impl Drop for SignalOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn dropping_the_execution_cancels_the_running_link() {
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
    let (after_tx, mut after_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let slots = std::sync::Mutex::new(Some((started_tx, dropped_tx)));
    let chain = Chain::named("cancel")
        .link(named("waits_forever", move |ctx: Context| {
            let (started, dropped) = slots.lock().unwrap().take().unwrap();
            async move {
                let _guard = SignalOnDrop(Some(dropped));
                started.send(()).unwrap();
                std::future::pending::<()>().await;
                Ok(ctx)
            }
        }))
        .link_sync(move |ctx: Context| {
            after_tx.send(()).unwrap();
            Ok(ctx)
        });
    let task = tokio::spawn(async move { chain.execute(Context::new()).await });
    tokio::time::timeout(Duration::from_secs(10), started_rx)
        .await
        .unwrap()
        .unwrap();
    task.abort();
    tokio::time::timeout(Duration::from_secs(10), dropped_rx)
        .await
        .expect("the link's future must be dropped")
        .unwrap();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(after_rx.try_recv().is_err(), "the next link must not run");
}
