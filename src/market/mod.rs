//! Market metadata: what each token is ([`info`]), fetched from Polymarket's Gamma API and cached in
//! the journal with an expiry ([`directory`]). Used to skip closed or ending markets, to settle
//! resolved positions, and to name markets in reports.

pub mod data_api;
pub mod directory;
pub mod info;
pub mod rtds;

pub use directory::MarketDirectory;
pub use info::{MarketInfo, MarketRef};
