//! The data of one wasmtime store (one call): WASI, the resource table, the
//! guest's state context and its memory limiter.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::{StateCtx, StateHost, StateView};

/// The most core instances one call may create (a component built by this
/// toolchain has a handful; wasmtime's default is 10,000).
pub const MAX_INSTANCES: usize = 64;
/// The most linear memories one call may create.
pub const MAX_MEMORIES: usize = 16;
/// The most tables one call may create.
pub const MAX_TABLES: usize = 64;
/// The most table elements one call may hold, all its tables together.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// The most resource handles (state handles, WASI streams, pollables…) one
/// call may hold at once: each is host memory the memory limit does not
/// see.
pub const MAX_HANDLES: usize = 10_000;

/// Refuses memory growth past a limit — the guest's linear memories
/// together, so a component cannot multiply it by declaring many — bounds
/// how many instances, memories and tables a call makes, and remembers
/// when it refused memory so the resulting trap can be reported as a
/// memory-limit error.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    /// Bytes of linear memory granted so far, all memories together.
    memory: usize,
    /// Table elements granted so far, all tables together.
    elements: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory in all.
    pub fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            memory: 0,
            elements: 0,
            exceeded: false,
        }
    }

    /// The bytes of linear memory it allows.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory.saturating_add(desired.saturating_sub(current));
        if total > self.limit {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (wanted {total} in all)",
                self.limit
            );
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .elements
            .saturating_add(desired.saturating_sub(current));
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// `wasi:http` hooks of a guest: outgoing HTTP requests are denied (a guest
/// reaches the world only through its state).
#[derive(Debug, Default)]
pub struct NoOutgoing;

type Pending = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

impl WasiHttpHooks for NoOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Pending,
    ) -> Box<
        dyn Future<Output = Result<(http::Response<WasiBody>, Pending), wasmtime_wasi_http::Error>>
            + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Everything one guest call can reach.
pub struct Ctx {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: NoOutgoing,
    pub(crate) table: ResourceTable,
    pub(crate) state: StateCtx,
    pub(crate) limiter: MemoryLimiter,
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StateHost for Ctx {
    fn state(&mut self) -> StateView<'_> {
        StateView {
            ctx: &self.state,
            table: &mut self.table,
        }
    }
}
