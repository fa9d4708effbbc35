//! Polygon: JSON-RPC access with pacing and failover ([`rpc`]), `OrderFilled` decoding ([`events`]),
//! and the feed that backfills from the checkpoint, follows the head and handles reorgs ([`feed`]).

pub mod abi;
pub mod clock;
pub mod events;
pub mod feed;
pub mod history;
pub mod mempool;
pub mod parts;
pub mod pending;
pub mod positions;
pub mod range;
pub mod rpc;

pub use clock::ChainClock;
pub use feed::{ChainFeed, FeedConfig, FeedPeers, FeedStatus, OwnBooked, OwnChange, OwnFill};
pub use rpc::{BlockRef, ChainError, Reads, Rpc, RpcConfig};
