//! A Dapr-compatible API server in-process on a loopback port, over a store
//! the test can also reach directly (or through a guest host).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wasm_state::api::dapr::{DaprApi, DaprOptions, StoreSpec};
use wasm_state::store::{ManualClock, Store, StoreConfig};

/// Start of test time: 2026-01-01T00:00:00Z in ms.
pub const T0: u64 = 1_767_225_600_000;

/// A running API on 127.0.0.1.
pub struct Api {
    pub addr: SocketAddr,
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Api {
    /// Serve `specs` over `store` (account `default`).
    pub async fn start(store: Store, specs: Vec<StoreSpec>, options: DaprOptions) -> Api {
        let api = DaprApi::new(&store, "default", specs, options).expect("api");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(api.serve(listener, async {
            let _ = rx.await;
        }));
        Api {
            addr,
            store,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The default store (`statestore` on the account scope) with default
    /// options, on a fresh database in `dir` with a manual clock.
    pub async fn default_in(dir: &Path) -> (Api, ManualClock) {
        let (store, clock) = manual_store(dir);
        let api = Api::start(
            store,
            vec![StoreSpec::default_store()],
            DaprOptions::default(),
        )
        .await;
        (api, clock)
    }

    /// Stop gracefully.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("api task").expect("serve");
        }
    }
}

/// A store in `dir` whose clock the test moves.
pub fn manual_store(dir: &Path) -> (Store, ManualClock) {
    let clock = ManualClock::new(T0);
    let config = StoreConfig {
        clock: Arc::new(clock.clone()),
        sweep_interval: None,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.join("state.redb"), config).expect("store");
    (store, clock)
}
