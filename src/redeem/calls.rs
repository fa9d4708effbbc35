//! The calls a redemption makes, encoded with `sol!`: the collateral adapter's `redeemPositions`
//! (pUSD as collateral: the adapter burns the outcome tokens and pays pUSD; calling Conditional
//! Tokens directly with pUSD would pay nothing), the one-time `setApprovalForAll`, and a Gnosis
//! Safe's `execTransaction` with its owner's EIP-712 signature of the SafeTx.

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol;
use alloy::sol_types::{SolCall, SolValue};

sol! {
    /// A collateral adapter (and Conditional Tokens' own signature).
    function redeemPositions(address collateralToken, bytes32 parentCollectionId, bytes32 conditionId, uint256[] indexSets);
    /// ERC-1155 operator approval.
    function setApprovalForAll(address operator, bool approved);
    /// ERC-1155 operator approval, read.
    function isApprovedForAll(address account, address operator) returns (bool);
    /// ERC-20 balance.
    function balanceOf(address account) returns (uint256);
    /// ERC-20 transfer (and mint, from the zero address): how a redemption's payout arrives.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// Gnosis Safe: run a call as the Safe.
    function execTransaction(address to, uint256 value, bytes data, uint8 operation, uint256 safeTxGas, uint256 baseGas, uint256 gasPrice, address gasToken, address refundReceiver, bytes signatures) returns (bool success);
    /// Gnosis Safe: its transaction counter.
    function nonce() returns (uint256);
    /// Exchange V3's Router: redeem `amount` shares of one outcome of a V3 market.
    function redeem(bytes31 conditionId, uint256 outcomeIndex, uint256 amount);
}

/// `redeemPositions(pUSD, 0, condition, [1, 2])`: both outcomes of a binary market.
#[must_use]
pub fn redeem(pusd: Address, condition: B256) -> Bytes {
    redeemPositionsCall {
        collateralToken: pusd,
        parentCollectionId: B256::ZERO,
        conditionId: condition,
        indexSets: vec![U256::from(1), U256::from(2)],
    }
    .abi_encode()
    .into()
}

/// The Router's `redeem(conditionId, outcomeIndex, amount)` for a V3 position: its id is the
/// market's 31-byte condition id followed by the outcome index byte.
#[must_use]
pub fn router_redeem(position: U256, amount: U256) -> Bytes {
    let id = position.to_be_bytes::<32>();
    redeemCall {
        conditionId: alloy::primitives::FixedBytes::<31>::from_slice(&id[..31]),
        outcomeIndex: U256::from(id[31]),
        amount,
    }
    .abi_encode()
    .into()
}

/// `payoutDenominator(condition)`.
#[must_use]
pub fn payout_denominator(condition: B256) -> Bytes {
    crate::chain::abi::payoutDenominatorCall { conditionId: condition }.abi_encode().into()
}

/// `setApprovalForAll(operator, true)`.
#[must_use]
pub fn approve(operator: Address) -> Bytes {
    setApprovalForAllCall { operator, approved: true }.abi_encode().into()
}

/// `isApprovedForAll(account, operator)`.
#[must_use]
pub fn is_approved(account: Address, operator: Address) -> Bytes {
    isApprovedForAllCall { account, operator }.abi_encode().into()
}

/// ERC-20 `balanceOf(account)`.
#[must_use]
pub fn erc20_balance(account: Address) -> Bytes {
    balanceOfCall { account }.abi_encode().into()
}

/// The Safe's `nonce()`.
#[must_use]
pub fn safe_nonce() -> Bytes {
    nonceCall {}.abi_encode().into()
}

/// The hash a Safe owner signs for a plain call (`operation` 0, no refund), as the Safe computes it:
/// EIP-712 over the domain (chain id, the Safe) and the SafeTx struct.
#[must_use]
pub fn safe_tx_hash(chain_id: u64, safe: Address, to: Address, data: &[u8], nonce: U256) -> B256 {
    let domain_type = keccak256("EIP712Domain(uint256 chainId,address verifyingContract)");
    let tx_type = keccak256(
        "SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,\
         uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)",
    );
    let domain = keccak256((domain_type, U256::from(chain_id), safe).abi_encode());
    let zero = U256::ZERO;
    let strukt = keccak256(
        // `operation` (uint8 0) is one zero word in abi.encode, like the uint256 fields around it.
        (tx_type, to, zero, keccak256(data), zero, zero, zero, zero, Address::ZERO, Address::ZERO, nonce).abi_encode(),
    );
    let mut buf = Vec::with_capacity(66);
    buf.extend_from_slice(&[0x19, 0x01]);
    buf.extend_from_slice(domain.as_slice());
    buf.extend_from_slice(strukt.as_slice());
    keccak256(buf)
}

/// `execTransaction` of a plain call signed by the owner (`signature`: r ‖ s ‖ v, v = 27 or 28).
#[must_use]
pub fn safe_exec(to: Address, data: Bytes, signature: [u8; 65]) -> Bytes {
    execTransactionCall {
        to,
        value: U256::ZERO,
        data,
        operation: 0,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        signatures: Bytes::from(signature.to_vec()),
    }
    .abi_encode()
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{address, b256, hex};

    #[test]
    fn calls_have_the_selectors_the_contracts_expect() {
        // keccak256 of the signatures, first four bytes.
        assert_eq!(&redeem(Address::ZERO, B256::ZERO)[..4], hex!("01b7037c"));
        assert_eq!(&approve(Address::ZERO)[..4], hex!("a22cb465"));
        assert_eq!(&is_approved(Address::ZERO, Address::ZERO)[..4], hex!("e985e9c5"));
        assert_eq!(&safe_exec(Address::ZERO, Bytes::new(), [0; 65])[..4], hex!("6a761202"));
        assert_eq!(&router_redeem(U256::ZERO, U256::ZERO)[..4], hex!("d217a3cc"));
    }

    #[test]
    fn a_v3_position_splits_into_condition_and_outcome() {
        // position = condition (31 bytes) << 8 | outcome
        let position = (U256::from(0xabcdu64) << 8) | U256::from(1);
        let data = router_redeem(position, U256::from(7));
        // The bytes31 argument is left-aligned in its word: 29 zero bytes, then 0xabcd, then padding.
        assert_eq!(&data[4 + 29..4 + 31], &[0xab, 0xcd]);
        assert_eq!(data[4 + 31], 0);
        assert_eq!(U256::from_be_slice(&data[36..68]), U256::from(1));
        assert_eq!(U256::from_be_slice(&data[68..100]), U256::from(7));
    }

    #[test]
    fn safe_hash_commits_to_chain_safe_call_and_nonce() {
        let (safe, to) = (
            address!("5afe5afe5afe5afe5afe5afe5afe5afe5afe5afe"),
            address!("ada100db00ca00073811820692005400218fce1f"),
        );
        let data = redeem(
            address!("c011a7e12a19f7b1f670d46f03b03f3342e82dfb"),
            b256!("1111111111111111111111111111111111111111111111111111111111111111"),
        );
        let h = safe_tx_hash(137, safe, to, &data, U256::from(3));
        for other in [
            safe_tx_hash(80_002, safe, to, &data, U256::from(3)),
            safe_tx_hash(137, to, to, &data, U256::from(3)),
            safe_tx_hash(137, safe, safe, &data, U256::from(3)),
            safe_tx_hash(137, safe, to, &data[..4], U256::from(3)),
            safe_tx_hash(137, safe, to, &data, U256::from(4)),
        ] {
            assert_ne!(h, other);
        }
    }
}
