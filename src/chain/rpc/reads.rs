//! Reads many tasks share (a target's balance for an exit's size, a pending trade's block, a
//! market's result), over one lazy HTTP connection per endpoint. After `failover_after` errors in
//! a row on one endpoint the next is used, as the feed does with its own connection: otherwise
//! every exit would wait out a timeout on a dead node and be sized on the journal's figure (which
//! does not know what the target held before we watched it) for the daemon's whole life.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use alloy::primitives::{Address, B256, U256};
use tracing::warn;

use super::{ChainError, ConditionResult, PoolTx, Rpc, RpcConfig};

/// Shared reads with failover (see the module's doc).
#[derive(Debug)]
pub struct Reads {
    rpcs: Vec<Rpc>,
    current: AtomicUsize,
    errors_in_row: AtomicU32,
    failover_after: u32,
}

impl Reads {
    /// One lazy HTTP connection per endpoint of `cfg` (its websocket left to the feed); `None`
    /// when none can be set up (no HTTP endpoint, or none that parses).
    pub async fn connect(cfg: &RpcConfig) -> Option<Self> {
        let mut rpcs = Vec::new();
        for url in &cfg.http_urls {
            let mut rpc = Rpc::new(RpcConfig { ws_url: None, http_urls: vec![url.clone()], ..cfg.clone() });
            match rpc.connect().await {
                Ok(()) => rpcs.push(rpc),
                Err(e) => warn!(cause = %e, "an endpoint is left out of balance reads"),
            }
        }
        (!rpcs.is_empty()).then(|| Self {
            rpcs,
            current: AtomicUsize::new(0),
            errors_in_row: AtomicU32::new(0),
            failover_after: cfg.failover_after.max(1),
        })
    }

    /// Runs `read` on the endpoint in use and counts how it went (see [`Reads::note`]).
    async fn read<'a, T, F>(&'a self, read: impl FnOnce(&'a Rpc) -> F) -> Result<T, ChainError>
    where
        F: std::future::Future<Output = Result<T, ChainError>> + 'a,
    {
        let i = self.current.load(Ordering::Relaxed) % self.rpcs.len();
        let r = read(&self.rpcs[i]).await;
        self.note(i, &r);
        r
    }

    /// Counts how the read on endpoint `i` went; too many errors in a row move reads to the next.
    fn note<T>(&self, i: usize, r: &Result<T, ChainError>) {
        // A read that started on an endpoint left since says nothing of the one in use.
        if i != self.current.load(Ordering::Relaxed) % self.rpcs.len() {
            return;
        }
        if r.is_ok() {
            self.errors_in_row.store(0, Ordering::Relaxed);
            return;
        }
        let errors = self.errors_in_row.fetch_add(1, Ordering::Relaxed) + 1;
        if errors >= self.failover_after && self.rpcs.len() > 1 {
            let next = (i + 1) % self.rpcs.len();
            // Another task may have moved on already: only the first moves.
            if self.current.compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                self.errors_in_row.store(0, Ordering::Relaxed);
                warn!(from = %self.rpcs[i].endpoint(), to = %self.rpcs[next].endpoint(), errors,
                    "balance reads fail on this endpoint: moving to the next");
            }
        }
    }

    /// [`Rpc::balance_of`].
    ///
    /// # Errors
    /// On an RPC failure or a malformed answer.
    pub async fn balance_of(
        &self,
        contract: Address,
        owner: Address,
        token: U256,
        at: u64,
    ) -> Result<U256, ChainError> {
        self.read(|rpc| rpc.balance_of(contract, owner, token, at)).await
    }

    /// [`Rpc::block_number`].
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.read(|rpc| rpc.block_number()).await
    }

    /// [`Rpc::mined_in`].
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn mined_in(&self, hash: B256) -> Result<Option<u64>, ChainError> {
        self.read(|rpc| rpc.mined_in(hash)).await
    }

    /// [`Rpc::transaction`].
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn transaction(&self, hash: B256) -> Result<Option<(PoolTx, bool)>, ChainError> {
        self.read(|rpc| rpc.transaction(hash)).await
    }

    /// [`Rpc::condition_result`].
    ///
    /// # Errors
    /// On an RPC failure or a malformed answer.
    pub async fn condition_result(
        &self,
        ctf: Address,
        condition: B256,
        outcomes: usize,
    ) -> Result<ConditionResult, ChainError> {
        self.read(|rpc| rpc.condition_result(ctf, condition, outcomes)).await
    }
}
