//! Errors of the runtime: what a deploy, call or run can hit, each with a
//! message that says what to do.

use std::time::Duration;

use thiserror::Error;

use crate::store::StateError;

/// Why a runtime operation failed.
#[derive(Debug, Error)]
pub enum HostError {
    /// No instance of that name is deployed in this host.
    #[error("no instance named {0:?} is deployed; deploy it first (or check the name)")]
    NotDeployed(String),
    /// The bytes are not a component this host can run.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// A mount prefix that is not a plain path.
    #[error(
        "mount prefix {0:?} must be a plain path like /shop (no `?`, `#`, spaces, `.` or `..` segments)"
    )]
    InvalidMount(String),
    /// A caller's request the host cannot carry out as asked (a run's
    /// memory limit over the host's…); nothing ran.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The component has no such export.
    #[error(
        "instance {instance:?} has no exported function {export:?}; exports are named `name` or `interface#name`"
    )]
    NoSuchExport {
        /// The instance.
        instance: String,
        /// The export asked for.
        export: String,
    },
    /// The call ran past its epoch deadline and was stopped.
    #[error("the guest ran longer than its {}ms deadline and was stopped; make it faster or raise the deadline", .limit.as_millis())]
    Deadline {
        /// The deadline in force.
        limit: Duration,
    },
    /// The guest tried to grow its memory past the limit and was stopped.
    #[error(
        "the guest tried to use more than its {limit} bytes of memory and was stopped; use less or raise the memory limit"
    )]
    MemoryLimit {
        /// The limit in bytes.
        limit: usize,
    },
    /// The guest trapped (a panic, `unreachable`, a bad access…).
    #[error("the guest trapped: {0}")]
    Trap(String),
    /// Every instance slot of the pooling allocator was in use (requests,
    /// watcher calls and runs share them); nothing ran.
    #[error("every instance slot is in use ({0}); nothing ran: try again shortly")]
    Busy(String),
    /// A state operation of the host failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Reading a component or creating the data directory failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Any other wasmtime failure (engine setup, linking…).
    #[error("wasmtime: {0}")]
    Wasmtime(String),
}

impl HostError {
    /// Is this the guest's fault (trap, deadline, memory) rather than the host's?
    pub fn is_guest_failure(&self) -> bool {
        matches!(
            self,
            HostError::Trap(_) | HostError::Deadline { .. } | HostError::MemoryLimit { .. }
        )
    }
}
