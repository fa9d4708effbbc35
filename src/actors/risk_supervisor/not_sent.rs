//! Why an approved order was not sent: the reason journaled with it.

use crate::risk::DenyReason;

/// Why an approved order was not sent, from the state now and its side: `reducing` stops only
/// BUYs, so a SELL held back was stopped by a halt (perhaps one still on its way to the supervisor,
/// its gate closed first); a halt lifted since is named as such, not as an empty cause.
pub(super) fn not_sent_reason(state: &crate::risk::BreakerState, side: crate::domain::Side) -> DenyReason {
    if state.tripped {
        DenyReason::Halted { reason: format!("{}: {}", state.code, state.reason) }
    } else if state.reducing && side == crate::domain::Side::Buy {
        DenyReason::Reducing { reason: format!("only exits are sent ({}: {})", state.code, state.reason) }
    } else {
        DenyReason::Halted { reason: "a halt stopped it before it was sent (lifted since, or not yet recorded)".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Side;
    use crate::risk::BreakerState;

    #[test]
    fn an_order_not_sent_is_named_by_what_stopped_it() {
        let state = |tripped, reducing, code: &str| BreakerState {
            tripped,
            reducing,
            code: code.into(),
            reason: "why".into(),
            ..BreakerState::default()
        };
        // (state, side, code, reason contains)
        let cases = [
            (state(true, false, "manual"), Side::Buy, "halted", "manual: why"),
            (state(true, false, "manual"), Side::Sell, "halted", "manual: why"),
            (state(false, true, "daily_loss_limit"), Side::Buy, "reducing", "only exits"),
            // Reducing never stops a SELL: a halt on its way did.
            (state(false, true, "daily_loss_limit"), Side::Sell, "halted", "a halt stopped it"),
            // Halted and resumed before the outcome came back.
            (state(false, false, ""), Side::Buy, "halted", "lifted since"),
        ];
        for (s, side, code, says) in cases {
            let r = not_sent_reason(&s, side);
            assert_eq!(r.code(), code, "{s:?} {side:?}");
            assert!(r.to_string().contains(says), "{r}");
        }
    }
}
