//! The bodies of the HTTP API as OpenAPI schemas.
//!
//! Handlers read request bodies field by field (see `fields`), so that every bad
//! field is refused with its own `param`; these types document those bodies for
//! `/openapi.json`. Where a handler builds its answer from a typed value, the
//! type lives here and the handler uses it, so the document cannot drift from it.

pub mod admin;
pub mod errors;
pub mod requests;
pub mod responses;
pub mod webhooks;
