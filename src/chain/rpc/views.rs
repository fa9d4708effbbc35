//! Read-only contract calls (`eth_call`): ERC-1155 balances, an exchange's operators, and a
//! condition's result in Conditional Tokens. One helper encodes, calls and decodes, so a malformed
//! answer is always an error naming the call, never a zero.

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider as _;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;

use super::{ChainError, Rpc};
use crate::chain::abi;

/// A condition's result as Conditional Tokens holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionResult {
    /// The sum of the numerators; 0 until the oracle reported.
    pub denominator: U256,
    /// What each outcome slot pays, over the denominator (read only once reported).
    pub numerators: Vec<U256>,
    /// Whether the condition was prepared in Conditional Tokens (read only while unreported): an
    /// unprepared one will never be reported there.
    pub prepared: bool,
}

impl Rpc {
    /// `call` on `to` at block `at`, decoded.
    async fn view<C: SolCall>(&self, to: Address, call: &C, at: BlockId) -> Result<C::Return, ChainError> {
        let out = self.view_raw(to, call, at).await?;
        self.decoded::<C>(&out)
    }

    /// `call` on `to` at block `at`, as answered (empty when `to` holds no code).
    async fn view_raw<C: SolCall>(&self, to: Address, call: &C, at: BlockId) -> Result<Bytes, ChainError> {
        let p = self.provider()?;
        let tx = TransactionRequest::default().to(to).input(Bytes::from(call.abi_encode()).into());
        self.call(p.call(tx).block(at)).await
    }

    fn decoded<C: SolCall>(&self, out: &Bytes) -> Result<C::Return, ChainError> {
        C::abi_decode_returns(out).map_err(|e| ChainError::Rpc {
            endpoint: self.endpoint(),
            message: format!("{} returned {} bytes: {e}", C::SIGNATURE, out.len()),
        })
    }

    /// ERC-1155 `balanceOf(owner, token)` on `contract` at block `at`.
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
        self.view(contract, &abi::balanceOfCall { owner, id: token }, at.into()).await
    }

    /// [`Rpc::balance_of`], or `None` when `contract` held no code at block `at` (a contract not
    /// deployed yet answers an empty call, which is not a balance of 0 and not a failure either).
    ///
    /// # Errors
    /// On an RPC failure or a malformed answer.
    pub async fn balance_of_if_deployed(
        &self,
        contract: Address,
        owner: Address,
        token: U256,
        at: u64,
    ) -> Result<Option<U256>, ChainError> {
        let out = self.view_raw(contract, &abi::balanceOfCall { owner, id: token }, at.into()).await?;
        if out.is_empty() {
            return Ok(None);
        }
        self.decoded::<abi::balanceOfCall>(&out).map(Some)
    }

    /// Whether `who` is an operator of `exchange` (may settle matches there), at the head.
    ///
    /// # Errors
    /// On an RPC failure or an answer that is not a boolean (not an exchange).
    pub async fn is_operator(&self, exchange: Address, who: Address) -> Result<bool, ChainError> {
        self.view(exchange, &abi::isOperatorCall { usr: who }, BlockId::latest()).await
    }

    /// The result of `condition` in Conditional Tokens at `ctf`, at the head, for its first
    /// `outcomes` slots: the numerators are read only once the denominator says it was reported.
    ///
    /// # Errors
    /// On an RPC failure or a malformed answer.
    pub async fn condition_result(
        &self,
        ctf: Address,
        condition: B256,
        outcomes: usize,
    ) -> Result<ConditionResult, ChainError> {
        let at = BlockId::latest();
        let answer = self.view_raw(ctf, &abi::payoutDenominatorCall { conditionId: condition }, at).await?;
        if answer.is_empty() {
            // No contract there (a test chain without Conditional Tokens) means nothing will ever
            // be reported at this address; any other empty answer is a failed read.
            let p = self.provider()?;
            let code = self.call(p.get_code_at(ctf).block_id(at)).await?;
            if code.is_empty() {
                return Ok(ConditionResult { denominator: U256::ZERO, numerators: Vec::new(), prepared: false });
            }
        }
        let denominator = self.decoded::<abi::payoutDenominatorCall>(&answer)?;
        let mut numerators = Vec::new();
        if denominator.is_zero() {
            let slots = self.view(ctf, &abi::getOutcomeSlotCountCall { conditionId: condition }, at).await?;
            return Ok(ConditionResult { denominator, numerators, prepared: !slots.is_zero() });
        }
        for i in 0..outcomes {
            let call = abi::payoutNumeratorsCall { conditionId: condition, index: U256::from(i) };
            numerators.push(self.view(ctf, &call, at).await?);
        }
        Ok(ConditionResult { denominator, numerators, prepared: true })
    }
}
