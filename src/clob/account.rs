//! Who signs and who pays: the signature type, the funder it implies, and the order type setting.
//! Pure: `doctor` and the live start use these to explain a mismatch before any order is built.

use alloy::primitives::Address;
use polymarket_client_sdk_v2::clob::types::{OrderType, SignatureType};

/// Polygon's chain id: the only chain live orders are signed for.
pub const POLYGON: u64 = 137;

/// How the key signs for the funder (docs/PROTOCOL.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigType {
    /// The key's own address holds the funds.
    Eoa,
    /// A Polymarket proxy wallet (email / Magic login).
    PolyProxy,
    /// A Gnosis Safe (browser-wallet login).
    PolyGnosisSafe,
    /// A deposit wallet validating ERC-1271 signatures.
    Poly1271,
}

impl SigType {
    /// Reads the `live.signature_type` setting.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "eoa" | "0" => Ok(Self::Eoa),
            "poly_proxy" | "proxy" | "1" => Ok(Self::PolyProxy),
            "poly_gnosis_safe" | "gnosis_safe" | "safe" | "2" => Ok(Self::PolyGnosisSafe),
            "poly_1271" | "1271" | "3" => Ok(Self::Poly1271),
            _ => Err(format!(
                "must be \"eoa\", \"poly_proxy\", \"poly_gnosis_safe\" or \"poly_1271\", got {}",
                crate::config::problem::quoted(s)
            )),
        }
    }

    /// The SDK's value.
    #[must_use]
    pub const fn sdk(self) -> SignatureType {
        match self {
            Self::Eoa => SignatureType::Eoa,
            Self::PolyProxy => SignatureType::Proxy,
            Self::PolyGnosisSafe => SignatureType::GnosisSafe,
            Self::Poly1271 => SignatureType::Poly1271,
        }
    }

    /// The setting's spelling.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Eoa => "eoa",
            Self::PolyProxy => "poly_proxy",
            Self::PolyGnosisSafe => "poly_gnosis_safe",
            Self::Poly1271 => "poly_1271",
        }
    }

    /// The funder this key controls under this signature type, when it can be derived.
    #[must_use]
    pub fn derived_funder(self, signer: Address) -> Option<Address> {
        match self {
            Self::Eoa => Some(signer),
            Self::PolyProxy => polymarket_client_sdk_v2::derive_proxy_wallet(signer, POLYGON),
            Self::PolyGnosisSafe => polymarket_client_sdk_v2::derive_safe_wallet(signer, POLYGON),
            Self::Poly1271 => None,
        }
    }
}

/// The funder to trade from: the configured one checked against the key, or the derived one.
///
/// # Errors
/// A plain-words explanation of the mismatch and its fix.
pub fn resolve_funder(sig: SigType, signer: Address, configured: Option<Address>) -> Result<Address, String> {
    let derived = sig.derived_funder(signer);
    match (configured, derived) {
        (None, Some(d)) => Ok(d),
        (None, None) => Err(format!(
            "live.signature_type = \"{}\" needs live.funder: set it to the deposit wallet's address",
            sig.name()
        )),
        (Some(c), None) => Ok(c),
        (Some(c), Some(d)) if c == d => Ok(c),
        (Some(c), Some(d)) => {
            let hint = [SigType::Eoa, SigType::PolyProxy, SigType::PolyGnosisSafe]
                .into_iter()
                .find(|t| t.derived_funder(signer) == Some(c))
                .map_or_else(
                    || "no signature type of this key gives that address: check that PRIVATE_KEY is the key of the account whose address you configured".to_owned(),
                    |t| format!("that address is this key's {} wallet: set live.signature_type = \"{}\"", t.name(), t.name()),
                );
            Err(format!(
                "the funder {c:#x} does not belong to this key as signature type \"{}\" (which gives {d:#x}); {hint}",
                sig.name()
            ))
        }
    }
}

/// The `live.order_type` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// Fill and kill: whatever matches now, the rest cancelled.
    Fak,
    /// Fill or kill: all now or nothing.
    Fok,
    /// Good till date: rests on the book until it expires.
    Gtd,
}

impl OrderKind {
    /// Reads the setting.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "FAK" => Ok(Self::Fak),
            "FOK" => Ok(Self::Fok),
            "GTD" => Ok(Self::Gtd),
            _ => Err(format!("must be \"FAK\", \"FOK\" or \"GTD\", got {}", crate::config::problem::quoted(s))),
        }
    }

    /// The SDK's value.
    #[must_use]
    pub const fn sdk(self) -> OrderType {
        match self {
            Self::Fak => OrderType::FAK,
            Self::Fok => OrderType::FOK,
            Self::Gtd => OrderType::GTD,
        }
    }

    /// The wire spelling.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fak => "FAK",
            Self::Fok => "FOK",
            Self::Gtd => "GTD",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const KEY_ADDR: Address = address!("1111111111111111111111111111111111111111");

    #[test]
    fn parses_every_spelling_and_rejects_others() {
        for (text, want) in [
            ("eoa", SigType::Eoa),
            ("POLY_PROXY", SigType::PolyProxy),
            ("poly_gnosis_safe", SigType::PolyGnosisSafe),
            ("2", SigType::PolyGnosisSafe),
            ("poly_1271", SigType::Poly1271),
        ] {
            assert_eq!(SigType::parse(text), Ok(want), "{text}");
        }
        assert!(SigType::parse("metamask").unwrap_err().contains("poly_gnosis_safe"));
        assert_eq!(OrderKind::parse("fak"), Ok(OrderKind::Fak));
        assert!(OrderKind::parse("GTC").is_err());
        // A key pasted into either setting is never echoed back.
        let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        for e in [SigType::parse(key).unwrap_err(), OrderKind::parse(key).unwrap_err()] {
            assert!(!e.contains(&key[2..]) && e.contains("a string of 66 characters"), "{e}");
        }
    }

    #[test]
    fn funder_is_derived_or_checked_and_a_mismatch_names_the_fix() {
        let safe = SigType::PolyGnosisSafe.derived_funder(KEY_ADDR).unwrap();
        let proxy = SigType::PolyProxy.derived_funder(KEY_ADDR).unwrap();
        assert_ne!(safe, proxy);
        assert_eq!(resolve_funder(SigType::Eoa, KEY_ADDR, None), Ok(KEY_ADDR));
        assert_eq!(resolve_funder(SigType::PolyGnosisSafe, KEY_ADDR, None), Ok(safe));
        assert_eq!(resolve_funder(SigType::PolyGnosisSafe, KEY_ADDR, Some(safe)), Ok(safe));
        // The operator's Safe address, but the proxy signature type: says which type fits.
        let e = resolve_funder(SigType::PolyProxy, KEY_ADDR, Some(safe)).unwrap_err();
        assert!(e.contains("set live.signature_type = \"poly_gnosis_safe\""), "{e}");
        // An address unrelated to the key.
        let e = resolve_funder(SigType::Eoa, KEY_ADDR, Some(address!("2222222222222222222222222222222222222222")))
            .unwrap_err();
        assert!(e.contains("PRIVATE_KEY is the key"), "{e}");
        assert!(resolve_funder(SigType::Poly1271, KEY_ADDR, None).unwrap_err().contains("live.funder"));
    }
}
