//! The admin API (`docs/admin-api.md`): what the CLI, the state explorer
//! and operators use on a running host.
//!
//! - [`ops`]: every admin operation, written once over a [`Host`]; the CLI
//!   calls it directly when it opens the data dir itself;
//! - [`api`]: the same operations as JSON over HTTP/1.1, served on the Unix
//!   socket in the data dir ([`socket`]) and, when asked, on a loopback TCP
//!   listener with `/metrics` and the state explorer page;
//! - [`token`]: the TCP listener's bearer token;
//! - [`transfer`]: export and import;
//! - [`vals`]: component values from and to text (`wasm-state call`).
//!
//! [`Host`]: crate::runtime::Host

pub mod api;
pub mod ops;
pub mod socket;
pub mod token;
pub mod transfer;
pub mod vals;

pub use api::AdminApi;
pub use ops::{Admin, AdminError, ScopeRef};
