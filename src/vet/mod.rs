//! Vetting a wallet before copying it: its fills read from the chain ([`history`], cached in the
//! journal), replayed through the daemon's own sizing and limits with a copy delay and a slippage
//! model ([`replay`](mod@replay)), resolved markets settled when they ended ([`resolutions`]), starting from what it held ([`holdings`]), and reported as text, JSON and a chart ([`render`]).

pub mod history;
pub mod holdings;
pub mod render;
pub mod replay;
pub mod resolutions;

pub use replay::{Copy, PriceModel, Report, Trade, VetConfig, replay};
pub use resolutions::Resolution;
