//! Where an outcome token's balances are held. Tokens of CTF markets (the V1 and CLOB V2 exchanges)
//! are Conditional Tokens positions; tokens of Exchange V3 markets live in the V3 PositionManager
//! (docs/PROTOCOL.md, positions). The exchange a token trades on says which generation it is.

use alloy::primitives::Address;

/// The two ERC-1155 contracts and the exchanges whose tokens live in the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionContracts {
    /// Conditional Tokens.
    pub conditional_tokens: Address,
    /// Exchange V3's PositionManager.
    pub position_manager: Address,
    /// Exchanges of the V3 generation.
    pub v3_exchanges: Vec<Address>,
}

impl PositionContracts {
    /// From `[chain]`.
    #[must_use]
    pub fn from_settings(c: &crate::config::settings::ChainSettings) -> Self {
        Self {
            conditional_tokens: c.conditional_tokens,
            position_manager: c.position_manager,
            v3_exchanges: c.v3_exchanges.clone(),
        }
    }

    /// The contract holding balances of the tokens traded on `exchange`.
    #[must_use]
    pub fn for_exchange(&self, exchange: Address) -> Address {
        if self.v3_exchanges.contains(&exchange) { self.position_manager } else { self.conditional_tokens }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_tokens_are_read_from_the_position_manager() {
        let (ctf, pm, v2, v3) =
            (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3), Address::repeat_byte(4));
        let p = PositionContracts { conditional_tokens: ctf, position_manager: pm, v3_exchanges: vec![v3] };
        for (exchange, want) in [(v2, ctf), (v3, pm), (Address::ZERO, ctf)] {
            assert_eq!(p.for_exchange(exchange), want);
        }
    }
}
