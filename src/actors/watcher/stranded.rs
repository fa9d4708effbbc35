//! Positions copied from wallets no longer watched (disabled or removed from `wallets.json`,
//! perhaps while the daemon was stopped): their exits are not read, so what was copied from them
//! stays open until the operator closes it or the market resolves. Said at start and after every
//! reload that leaves such positions, naming each wallet.

use std::collections::{BTreeMap, HashMap, HashSet};

use actix::Addr;
use alloy::primitives::Address;

use crate::actors::notifier::{Event, Notifier};
use crate::actors::store::{OpenCopies, StoreActor};
use crate::domain::{Shares, TokenId};

/// The warning for the `open` copies of wallets not in `watched` (named by `labels` where known),
/// or `None` when every open copy belongs to a watched wallet.
#[must_use]
pub fn stranded(
    open: &[(Address, TokenId, Shares)],
    watched: &HashSet<Address>,
    labels: &HashMap<Address, String>,
) -> Option<String> {
    let mut by_wallet: BTreeMap<Address, (usize, i64)> = BTreeMap::new();
    for (w, _, held) in open.iter().filter(|(w, _, _)| !watched.contains(w)) {
        let e = by_wallet.entry(*w).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(held.0);
    }
    if by_wallet.is_empty() {
        return None;
    }
    let list: Vec<String> = by_wallet
        .iter()
        .map(|(w, (tokens, held))| {
            let name = labels.get(w).map_or_else(|| w.to_string(), |l| format!("{l} ({w})"));
            format!("{name}: {tokens} position(s), {} shares", Shares(*held))
        })
        .collect();
    Some(format!(
        "positions copied from wallets no longer watched stay open, their exits not copied: {}. To have \
         their exits copied, list them again and /pause them (buys stay off); or close those markets \
         (polycopy close <market>)",
        list.join("; ")
    ))
}

/// Reads the open copies and warns (code `exits_not_copied`) when some belong to wallets not in
/// `watched`. A journal that does not answer is left to the next check.
pub async fn warn_if_stranded(
    store: Addr<StoreActor>,
    notifier: Addr<Notifier>,
    watched: HashSet<Address>,
    labels: HashMap<Address, String>,
) {
    let Ok(Ok(open)) = store.send(OpenCopies).await else { return };
    if let Some(message) = stranded(&open, &watched, &labels) {
        notifier.do_send(Event::Warning { code: "exits_not_copied", message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    #[test]
    fn only_wallets_no_longer_watched_are_named_with_their_positions() {
        let (a, b, c) = (Address::repeat_byte(0xaa), Address::repeat_byte(0xbb), Address::repeat_byte(0xcc));
        let t = |n: u8| TokenId::from(n);
        let open = [
            (a, t(1), Shares(10 * ONE)),
            (b, t(1), Shares(2 * ONE)),
            (b, t(2), Shares(3 * ONE)),
            (c, t(3), Shares(ONE)),
        ];
        let labels = HashMap::from([(b, "whale".to_owned())]);
        let watched = HashSet::from([a]);
        let said = stranded(&open, &watched, &labels).unwrap();
        assert!(said.contains(&format!("whale ({b}): 2 position(s), 5 shares")), "{said}");
        assert!(said.contains(&format!("{c}: 1 position(s), 1 shares")), "{said}");
        assert!(!said.contains(&a.to_string()), "{said}");
        assert_eq!(stranded(&open, &HashSet::from([a, b, c]), &labels), None);
        assert_eq!(stranded(&[], &HashSet::new(), &labels), None);
    }
}
