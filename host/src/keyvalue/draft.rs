//! `wasi:keyvalue@0.2.0-draft`: the version wasmtime 48 implements
//! (`wasmtime serve -S keyvalue`): `u64` cursors and counters, no
//! compare-and-swap. Types are translated here; the semantics are
//! [`KvBucket`]'s.

use wasmtime::component::{Linker, Resource};

use super::{HasKv, KvBucket, OpenError, open};
use crate::bindings::{StateHost, StateView};
use crate::store::StateError;

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        world: "wasi:keyvalue/watch-service",
        path: "../wit/keyvalue/0.2.0-draft",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "wasi:keyvalue/store.bucket": crate::keyvalue::KvBucket },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};
pub use generated::{WatchService, WatchServicePre};
use store::Error;

type Res<T> = wasmtime::Result<Result<T, Error>>;

/// Add the `store`, `atomics` and `batch` imports of this version.
pub fn add_to_linker<T: StateHost + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    WatchService::add_to_linker::<T, HasKv>(linker, |t| t.state())
}

fn error(e: StateError) -> Error {
    match e.root() {
        StateError::AccessDenied(_) => Error::AccessDenied,
        StateError::NoSuchSession => Error::NoSuchStore,
        _ => Error::Other(e.to_string()),
    }
}

fn res<T, U>(v: &StateView<'_>, r: Result<T, StateError>, f: impl FnOnce(T) -> U) -> Res<U> {
    Ok(r.map(f).map_err(|e| {
        v.ctx.note(&e);
        error(e)
    }))
}

impl store::Host for StateView<'_> {
    async fn open(&mut self, identifier: String) -> Res<Resource<KvBucket>> {
        match open(self.ctx, &identifier).await {
            Ok(b) => Ok(Ok(self.table.push(b)?)),
            Err(OpenError::NoSuchStore) => Ok(Err(Error::NoSuchStore)),
            Err(OpenError::State(e)) => {
                self.ctx.note(&e);
                Ok(Err(error(e)))
            }
        }
    }
}

impl store::HostBucket for StateView<'_> {
    async fn get(&mut self, b: Resource<KvBucket>, key: String) -> Res<Option<Vec<u8>>> {
        let r = super::bucket(self, &b)?.get(&key).await;
        res(self, r, |v| v)
    }

    async fn set(&mut self, b: Resource<KvBucket>, key: String, value: Vec<u8>) -> Res<()> {
        let r = super::bucket(self, &b)?.set(&key, value).await;
        res(self, r, |v| v)
    }

    async fn delete(&mut self, b: Resource<KvBucket>, key: String) -> Res<()> {
        let r = super::bucket(self, &b)?.delete(&key).await;
        res(self, r, |v| v)
    }

    async fn exists(&mut self, b: Resource<KvBucket>, key: String) -> Res<bool> {
        let r = super::bucket(self, &b)?.exists(&key).await;
        res(self, r, |v| v)
    }

    async fn list_keys(
        &mut self,
        b: Resource<KvBucket>,
        cursor: Option<u64>,
    ) -> Res<store::KeyResponse> {
        let bucket = super::bucket(self, &b)?;
        let ctx = self.ctx;
        let cursors = &ctx.keyvalue().cursors;
        let identity = bucket.identity();
        let from = match cursor {
            None => None,
            Some(n) => match cursors.redeem(ctx.instance(), &identity, n) {
                Some(c) => Some(c),
                None => {
                    return Ok(Err(Error::Other(format!(
                        "cursor {n} is not one this bucket returned in the last {} s; \
                         start the listing again with no cursor",
                        super::cursors::TTL.as_secs()
                    ))));
                }
            },
        };
        let r = bucket.list(from).await;
        res(self, r, |page| store::KeyResponse {
            keys: page.keys,
            cursor: page
                .cursor
                .map(|c| cursors.issue(ctx.instance(), &identity, c)),
        })
    }

    async fn drop(&mut self, b: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for StateView<'_> {
    async fn increment(&mut self, b: Resource<KvBucket>, key: String, delta: u64) -> Res<u64> {
        let r = super::bucket(self, &b)?
            .increment_unsigned(&key, delta)
            .await;
        res(self, r, |v| v)
    }
}

impl batch::Host for StateView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Res<Vec<Option<(String, Vec<u8>)>>> {
        let r = super::bucket(self, &b)?.get_many(&keys).await;
        res(self, r, |values| {
            keys.into_iter()
                .zip(values)
                .map(|(k, v)| v.map(|v| (k, v)))
                .collect()
        })
    }

    async fn set_many(
        &mut self,
        b: Resource<KvBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Res<()> {
        let r = super::bucket(self, &b)?.set_many(key_values).await;
        res(self, r, |v| v)
    }

    async fn delete_many(&mut self, b: Resource<KvBucket>, keys: Vec<String>) -> Res<()> {
        let r = super::bucket(self, &b)?.delete_many(&keys).await;
        res(self, r, |v| v)
    }
}
