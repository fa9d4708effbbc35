//! Cancels owed for GTD orders given up (see [`crate::store::OwedCancel`]): asked of the exchange
//! in the background, with growing waits, until it answers or the order expires. Journaled, so a
//! restart goes on asking; the placement's slot is never held for them.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::actors::store::{CancelPaid, OwedCancels, Writer};
use crate::clob::venue::{Venue, VenueError};
use crate::store::{OwedCancel, now_ms};

/// Waits before each ask after the first: growing, then every five minutes until the order expires.
const ASK_AGAIN_AFTER_S: [u64; 4] = [2, 10, 60, 300];

/// Asks the exchange to cancel a GTD order given up, and says what it answered.
pub(super) async fn cancel_given_up(venue: &Venue, id: &str) -> Result<(), VenueError> {
    if venue.cancel(id).await? {
        warn!(order = %id, "a GTD order given up was on the book after all: cancelled");
    } else {
        info!(order = %id, "a GTD order given up is not on the book (cancel asked, nothing to cancel)");
    }
    Ok(())
}

/// Asks for `owed` again after each wait until the exchange answers or the order expires (it
/// cannot fill after that), then notes in the journal that nothing is owed. `at_once`: the first
/// ask is made without a wait (a start finding the cancel owed).
pub(super) async fn pay(venue: Arc<Venue>, writer: Writer, owed: OwedCancel, at_once: bool) {
    let id = owed.order_id.as_str();
    let waits = ASK_AGAIN_AFTER_S.iter().copied();
    let waits = at_once.then_some(0).into_iter().chain(waits).chain(std::iter::repeat(ASK_AGAIN_AFTER_S[3]));
    for (n, wait) in waits.enumerate() {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        if owed.until_s <= now_ms() / 1000 {
            break;
        }
        match cancel_given_up(&venue, id).await {
            Ok(()) => break,
            Err(e) if n == ASK_AGAIN_AFTER_S.len() => {
                error!(order = %id, cause = %e, "a GTD order given up could not be cancelled yet: asked again every 5 minutes until it expires; a fill of it is booked from the chain");
            }
            Err(e) => warn!(order = %id, cause = %e, "a GTD order given up could not be cancelled yet"),
        }
    }
    if let Err(e) = writer.ask(CancelPaid(owed.fill_row)).await {
        warn!(order = %id, cause = %e, "could not note in the journal that a cancel is no longer owed; a restart asks once more");
    }
}

/// Goes on asking the cancels a previous run still owed (each in the background).
pub async fn pay_owed(venue: Arc<Venue>, writer: Writer) {
    match writer.ask(OwedCancels(now_ms() / 1000)).await {
        Ok(owed) => {
            if !owed.is_empty() {
                warn!(count = owed.len(), "cancels of GTD orders given up are still owed: asking them again");
            }
            for o in owed {
                actix::spawn(pay(venue.clone(), writer.clone(), o, true));
            }
        }
        Err(e) => error!(cause = %e, "could not read the cancels owed from the journal"),
    }
}
