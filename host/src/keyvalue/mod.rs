//! The standard `wasi:keyvalue` interfaces (store, atomics, batch) on the
//! state store, so components written against the standard WIT run on
//! wasm-state unchanged and get the durable, scoped, etag'd store.
//!
//! Two versions are linked side by side (a component imports either, and
//! may import `wasm-state:state` as well):
//!
//! - [`draft`]: `wasi:keyvalue@0.2.0-draft`, the one wasmtime 48 implements
//!   (`wasmtime serve -S keyvalue`);
//! - [`draft2`]: `wasi:keyvalue@0.2.0-draft2` as Spin implements it, with
//!   compare-and-swap.
//!
//! Bucket identifiers name scopes ([`buckets`]); every operation is written
//! once in [`KvBucket`]. The WIT is vendored in `wit/keyvalue/`.

pub mod bucket;
pub mod buckets;
pub mod cursors;
pub mod draft;
pub mod draft2;

use wasmtime::component::{HasData, Linker, Resource};

pub use bucket::{KvBucket, KvCas};
pub use buckets::{BucketMap, BucketMappingError, BucketScope, BucketTarget, Resolved};

use crate::bindings::{StateCtx, StateHost, StateView};
use crate::store::StateError;

/// The `wasi:keyvalue` settings and state of one host, shared by its guests.
#[derive(Debug, Default)]
pub struct Keyvalue {
    /// Operator-named buckets.
    pub buckets: BucketMap,
    /// Numeric cursors of `@0.2.0-draft` listings.
    pub cursors: cursors::Cursors,
}

impl Keyvalue {
    /// Settings with these bucket mappings.
    pub fn new(buckets: BucketMap) -> Self {
        Keyvalue {
            buckets,
            cursors: cursors::Cursors::default(),
        }
    }
}

struct HasKv;

impl HasData for HasKv {
    type Data<'a> = StateView<'a>;
}

/// Add both versions' imports to a linker.
pub fn add_to_linker<T: StateHost + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    draft::add_to_linker(linker)?;
    draft2::add_to_linker(linker)
}

/// Why a bucket did not open.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The identifier names no bucket (or an unknown session).
    NoSuchStore,
    /// The store failed.
    State(StateError),
}

/// Open the bucket `identifier` names for the guest of `ctx`.
pub(crate) async fn open(ctx: &StateCtx, identifier: &str) -> Result<KvBucket, OpenError> {
    let store = ctx.store();
    let handle = match ctx.keyvalue().buckets.resolve(identifier) {
        Resolved::Scope(BucketScope::Instance, prefix) => (store.instance(ctx.instance()), prefix),
        Resolved::Scope(BucketScope::Account, prefix) => (store.account(ctx.account()), prefix),
        Resolved::Session(id) => match store.session(ctx.instance(), id).await {
            Ok(h) => (Ok(h), ""),
            Err(StateError::NoSuchSession | StateError::InvalidArgument(_)) => {
                return Err(OpenError::NoSuchStore);
            }
            Err(e) => return Err(OpenError::State(e)),
        },
        Resolved::Unknown => return Err(OpenError::NoSuchStore),
    };
    let (scope, prefix) = handle;
    let scope = ctx.scope(scope.map_err(OpenError::State)?);
    Ok(KvBucket::new(scope, prefix, identifier))
}

/// The bucket behind a resource handle.
fn bucket(v: &StateView<'_>, b: &Resource<KvBucket>) -> wasmtime::Result<KvBucket> {
    Ok(v.table.get(b)?.clone())
}
