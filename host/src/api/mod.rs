//! APIs through which other programs reach the state: the Dapr-compatible
//! state HTTP API ([`dapr`]). They call the [`store`](crate::store) only,
//! never the guest runtime.

pub mod dapr;
