//! `wasi:keyvalue@0.2.0-draft2` as Spin implements it
//! (`wit/deps/keyvalue-2024-10-17`): string cursors, `s64` counters,
//! compare-and-swap, and `get-many` answering `(key, option<value>)` pairs.
//! (Upstream `WebAssembly/wasi-keyvalue` main carries the same package id
//! with another `get-many` shape; components built against it link here
//! unless they import `batch`.) Types are translated here; the semantics
//! are [`KvBucket`]'s.

use wasmtime::component::{Linker, Resource};

use super::{HasKv, KvBucket, KvCas, OpenError, open};
use crate::bindings::{StateHost, StateView};
use crate::store::StateError;

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        world: "wasi:keyvalue/watch-service",
        path: "../wit/keyvalue/0.2.0-draft2",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::KvBucket,
            "wasi:keyvalue/atomics.cas": crate::keyvalue::KvCas,
        },
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
        cursor: Option<String>,
    ) -> Res<store::KeyResponse> {
        let r = super::bucket(self, &b)?.list(cursor).await;
        res(self, r, |page| store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, b: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::HostCas for StateView<'_> {
    async fn new(&mut self, b: Resource<KvBucket>, key: String) -> Res<Resource<KvCas>> {
        match super::bucket(self, &b)?.cas(&key).await {
            Ok(cas) => Ok(Ok(self.table.push(cas)?)),
            Err(e) => {
                self.ctx.note(&e);
                Ok(Err(error(e)))
            }
        }
    }

    async fn current(&mut self, c: Resource<KvCas>) -> Res<Option<Vec<u8>>> {
        let r = self.table.get_mut(&c)?.current().await;
        res(self, r, |v| v)
    }

    async fn drop(&mut self, c: Resource<KvCas>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl atomics::Host for StateView<'_> {
    async fn increment(&mut self, b: Resource<KvBucket>, key: String, delta: i64) -> Res<i64> {
        let r = super::bucket(self, &b)?.increment(&key, delta).await;
        res(self, r, |v| v)
    }

    async fn swap(
        &mut self,
        c: Resource<KvCas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(c)?;
        match cas.swap(value).await {
            Ok(true) => Ok(Ok(())),
            // Changed since the read: hand back a fresh CAS of the key as it
            // is now (as Spin does), so the guest can retry with it.
            Ok(false) => match cas.bucket.cas(&cas.key).await {
                Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(self.table.push(fresh)?))),
                Err(e) => {
                    self.ctx.note(&e);
                    Ok(Err(atomics::CasError::StoreError(error(e))))
                }
            },
            Err(e) => {
                self.ctx.note(&e);
                Ok(Err(atomics::CasError::StoreError(error(e))))
            }
        }
    }
}

impl batch::Host for StateView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Res<Vec<(String, Option<Vec<u8>>)>> {
        let r = super::bucket(self, &b)?.get_many(&keys).await;
        res(self, r, |values| keys.into_iter().zip(values).collect())
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
