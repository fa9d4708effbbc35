//! Polymarket's CLOB (V2). So far: the pure pricing rules every live order must satisfy
//! ([`pricing`]). Order signing, posting and outcome resolution through `polymarket_client_sdk_v2`
//! build on these.

pub mod pricing;

pub use pricing::{TickSize, limit_price_on_tick};
