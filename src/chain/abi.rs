//! The contract interfaces polycopy reads, declared once with `sol!`: the exchanges' `OrderFilled`
//! events and `matchOrders` calls for each generation, their signed `Order` structs (whose
//! EIP-712 hash is the order hash the events carry), ERC-1155 `balanceOf` and Conditional Tokens'
//! payouts.
//! docs/PROTOCOL.md §3 and §8 describe them and name their public sources.

#![allow(missing_docs, clippy::too_many_arguments)] // sol! generates the items and their fields

use alloy::sol;

/// The CTF Exchange V1 (legacy): assets by id, collateral is asset 0.
pub mod v1 {
    use super::sol;

    sol! {
        /// The order V1 signs (EIP-712 type `Order`, domain version "1").
        #[derive(Debug, PartialEq, Eq)]
        struct Order {
            uint256 salt;
            address maker;
            address signer;
            address taker;
            uint256 tokenId;
            uint256 makerAmount;
            uint256 takerAmount;
            uint256 expiration;
            uint256 nonce;
            uint256 feeRateBps;
            uint8 side;
            uint8 signatureType;
        }

        /// The order as `matchOrders` takes it: the signed fields and the signature.
        #[derive(Debug, PartialEq, Eq)]
        struct SignedOrder {
            uint256 salt;
            address maker;
            address signer;
            address taker;
            uint256 tokenId;
            uint256 makerAmount;
            uint256 takerAmount;
            uint256 expiration;
            uint256 nonce;
            uint256 feeRateBps;
            uint8 side;
            uint8 signatureType;
            bytes signature;
        }

        /// A V1 fill of one order.
        #[derive(Debug, PartialEq, Eq)]
        event OrderFilled(
            bytes32 indexed orderHash,
            address indexed maker,
            address indexed taker,
            uint256 makerAssetId,
            uint256 takerAssetId,
            uint256 makerAmountFilled,
            uint256 takerAmountFilled,
            uint256 fee
        );

        /// The operator's settlement of one taker order against maker orders.
        function matchOrders(
            SignedOrder takerOrder,
            SignedOrder[] makerOrders,
            uint256 takerFillAmount,
            uint256[] makerFillAmounts
        );
    }
}

/// The CTF Exchange V2 (and its NegRisk twin) and Exchange V3: one token per order, a side byte.
pub mod v2 {
    use super::sol;

    sol! {
        /// The order V2 and V3 sign (EIP-712 type `Order`, domain version "2" or "3").
        #[derive(Debug, PartialEq, Eq)]
        struct Order {
            uint256 salt;
            address maker;
            address signer;
            uint256 tokenId;
            uint256 makerAmount;
            uint256 takerAmount;
            uint8 side;
            uint8 signatureType;
            uint256 timestamp;
            bytes32 metadata;
            bytes32 builder;
        }

        /// The order as `matchOrders` takes it: the signed fields and the signature.
        #[derive(Debug, PartialEq, Eq)]
        struct SignedOrder {
            uint256 salt;
            address maker;
            address signer;
            uint256 tokenId;
            uint256 makerAmount;
            uint256 takerAmount;
            uint8 side;
            uint8 signatureType;
            uint256 timestamp;
            bytes32 metadata;
            bytes32 builder;
            bytes signature;
        }

        /// A V2/V3 fill of one order.
        #[derive(Debug, PartialEq, Eq)]
        event OrderFilled(
            bytes32 indexed orderHash,
            address indexed maker,
            address indexed taker,
            uint8 side,
            uint256 tokenId,
            uint256 makerAmountFilled,
            uint256 takerAmountFilled,
            uint256 fee,
            bytes32 builder,
            bytes32 metadata
        );

        /// The taker's side of a V3 match: what it gives, what it gets, its fee.
        #[derive(Debug, PartialEq, Eq)]
        struct TakerAmounts {
            uint256 fillAmount;
            uint256 receiveAmount;
            uint256 feeAmount;
        }

        /// The operator's settlement on V2 (`matchOrders_0Call`).
        function matchOrders(
            bytes32 conditionId,
            SignedOrder takerOrder,
            SignedOrder[] makerOrders,
            uint256 takerFillAmount,
            uint256[] makerFillAmounts,
            uint256 takerFeeAmount,
            uint256[] makerFeeAmounts
        );

        /// The operator's settlement on Exchange V3, V2's orders with the taker's amounts as one
        /// tuple (`matchOrders_1Call`).
        function matchOrders(
            SignedOrder takerOrder,
            SignedOrder[] makerOrders,
            uint256[] makerFillAmounts,
            uint256[] makerFeeAmounts,
            TakerAmounts takerAmounts
        );
    }
}

sol! {
    /// ERC-1155 balance (Conditional Tokens, the V3 PositionManager).
    function balanceOf(address owner, uint256 id) external view returns (uint256);

    /// Whether an address may settle matches on an exchange (every generation has it).
    function isOperator(address usr) external view returns (bool);

    /// Conditional Tokens: 0 until the oracle reported the condition's result, then the sum of
    /// its payout numerators.
    function payoutDenominator(bytes32 conditionId) external view returns (uint256);

    /// Conditional Tokens: what outcome slot `index` pays, over the denominator.
    function payoutNumerators(bytes32 conditionId, uint256 index) external view returns (uint256);

    /// Conditional Tokens: the condition's outcome slots; 0 for a condition never prepared there
    /// (a market of another generation, whose result is kept elsewhere).
    function getOutcomeSlotCount(bytes32 conditionId) external view returns (uint256);
}

#[cfg(test)]
mod tests {
    use alloy::sol_types::{SolCall, SolEvent};

    use super::*;

    #[test]
    fn selectors_and_topics_are_the_deployed_ones() {
        // The values on Polygonscan for the deployed exchanges (docs/PROTOCOL.md §3, §8).
        assert_eq!(alloy::hex::encode(v2::matchOrders_0Call::SELECTOR), "3c2b4399");
        assert_eq!(alloy::hex::encode(v2::matchOrders_1Call::SELECTOR), "0fb25ba4");
        assert_eq!(v2::OrderFilled::SIGNATURE_HASH, crate::chain::events::ORDER_FILLED_V2);
        assert_eq!(v1::OrderFilled::SIGNATURE_HASH, crate::chain::events::ORDER_FILLED_V1);
        assert_eq!(alloy::hex::encode(balanceOfCall::SELECTOR), "00fdd58e");
        eprintln!("v1 matchOrders {}", alloy::hex::encode(v1::matchOrdersCall::SELECTOR));
    }
}
