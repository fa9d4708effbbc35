//! Polymarket's CLOB (V2): who signs ([`account`]), the pricing rules every order satisfies
//! ([`pricing`]), the signed order as we store it ([`order`]), what each answer means ([`outcome`]),
//! the connection that places and looks up orders through `polymarket_client_sdk_v2` ([`venue`]), and
//! the calls that need no credentials ([`public`]).

pub mod account;
pub mod amounts;
mod credentials;
pub mod doctor;
pub mod matched;
pub mod order;
pub mod outcome;
pub mod pricing;
pub mod public;
pub mod reachability;
pub mod venue;
mod venue_config;
mod venue_error;

pub use account::{OrderKind, SigType};
pub use pricing::{TickSize, limit_price_on_tick};
