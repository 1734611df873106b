//! The one-shot transfer (`ferry send`) state machine: which events move a transfer to which
//! state, and which are ignored. A final state (done, rejected, failed) never changes; an event
//! that would leave the state as it is changes nothing (so nothing is announced twice).
//!
//! Sender: `Queued` (stored, the device away) -> `Offered` (the offer was acknowledged) ->
//! `Active` (accepted, or a block request raced ahead of the accept) -> `Done`; `Rejected` or
//! `Failed` from any open state. Receiver: `Offered` (a prompt) or `Active` (auto-accept) ->
//! `Done` / `Rejected` (the user declined) / `Failed`.
//!
//! Replaces ferry-node `send.rs`: the `allowed_from` predicates passed to `set_state` (`open`,
//! `offered`, `any`, `|s| !s.is_final()`, `|s| *s == Queued`) and `set_state`'s own test, the
//! initial state of `on_offer`, and `on_block`'s answer by state. The node maps its
//! `ferry_store::TransferState` one to one onto [`SendState`], calls [`transition`] inside its
//! `update_transfer` closure, and writes back the new state (with `finished_ms = now` when
//! [`SendState::is_final`], and `done_bytes = total` on `Done`).

/// A transfer's state (the node's `ferry_store::TransferState`, one to one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendState {
    /// Sender: stored, not yet delivered.
    Queued,
    /// Delivered; the receiver's user has not answered.
    Offered,
    /// Accepted: content moving (or waiting for the other device).
    Active,
    Done,
    Rejected(String),
    Failed(String),
}

impl SendState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SendState::Queued => "queued",
            SendState::Offered => "offered",
            SendState::Active => "active",
            SendState::Done => "done",
            SendState::Rejected(_) => "rejected",
            SendState::Failed(_) => "failed",
        }
    }

    /// Done, rejected or failed: nothing more will happen.
    pub fn is_final(&self) -> bool {
        matches!(self, SendState::Done | SendState::Rejected(_) | SendState::Failed(_))
    }

    fn open(&self) -> bool {
        matches!(self, SendState::Queued | SendState::Offered)
    }
}

/// What happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendEvent {
    /// Sender: the receiver acknowledged the offer (`flush`).
    OfferDelivered,
    /// Sender: the receiver refused the offer outright (`flush`: an error reply).
    OfferRefused(String),
    /// Sender: the receiver's `Accepted` update (`on_update`).
    PeerAccepted,
    /// Sender: the receiver's `Rejected` update.
    PeerRejected(String),
    /// Sender: a block was requested while the state still said offered or queued (the accept
    /// raced ahead of its update; `on_block`).
    BlockRequested,
    /// Receiver: the user accepted the prompt (`answer`).
    UserAccepted,
    /// Receiver: the user declined (`answer`).
    UserDeclined(String),
    /// Everything arrived: the receiver placed it, or the sender got its `Done` update.
    Completed,
    /// The transfer cannot complete (either side).
    Failed(String),
}

/// The state after `event`, or None when nothing changes (the event is ignored in this state).
pub fn transition(state: &SendState, event: &SendEvent) -> Option<SendState> {
    let (to, allowed) = match event {
        SendEvent::OfferDelivered => (SendState::Offered, *state == SendState::Queued),
        SendEvent::OfferRefused(m) => (SendState::Failed(format!("refused: {m}")), true),
        SendEvent::PeerAccepted => (SendState::Active, state.open()),
        SendEvent::PeerRejected(m) => (SendState::Rejected(m.clone()), true),
        SendEvent::BlockRequested => (SendState::Active, state.open()),
        SendEvent::UserAccepted => (SendState::Active, *state == SendState::Offered),
        SendEvent::UserDeclined(m) => (SendState::Rejected(m.clone()), *state == SendState::Offered),
        SendEvent::Completed => (SendState::Done, true),
        SendEvent::Failed(m) => (SendState::Failed(m.clone()), true),
    };
    (allowed && !state.is_final() && *state != to).then_some(to)
}

/// The state of a newly received offer: accepted at once when the sender is trusted
/// (auto-accept, and the `Accepted` update is owed to the sender), else waiting for the user.
pub fn incoming(auto_accept: bool) -> SendState {
    if auto_accept { SendState::Active } else { SendState::Offered }
}

/// How the sender answers a block request, by the transfer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockAnswer {
    /// Serve it.
    Serve,
    /// Serve it, after moving to `Active` ([`SendEvent::BlockRequested`]).
    ActivateAndServe,
    /// Refuse with this message (a failed send says why, so whichever concurrent answer reaches
    /// the receiver first carries the reason).
    Refuse(String),
}

pub fn block_answer(state: &SendState) -> BlockAnswer {
    match state {
        SendState::Active => BlockAnswer::Serve,
        SendState::Queued | SendState::Offered => BlockAnswer::ActivateAndServe,
        SendState::Failed(why) => BlockAnswer::Refuse(why.clone()),
        other => BlockAnswer::Refuse(format!("this send is {}", other.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SendEvent as E;
    use SendState as S;

    fn run(start: S, events: &[E]) -> S {
        events.iter().fold(start, |s, e| transition(&s, e).unwrap_or(s))
    }

    #[test]
    fn sender_and_receiver_paths() {
        assert_eq!(run(S::Queued, &[E::OfferDelivered, E::PeerAccepted, E::Completed]), S::Done);
        assert_eq!(run(S::Queued, &[E::OfferDelivered, E::BlockRequested, E::PeerAccepted]), S::Active);
        assert_eq!(run(incoming(false), &[E::UserAccepted, E::Completed]), S::Done);
        assert_eq!(incoming(true), S::Active);
        assert_eq!(run(incoming(false), &[E::UserDeclined("no".into())]), S::Rejected("no".into()));
        assert_eq!(run(S::Queued, &[E::OfferRefused("muted".into())]), S::Failed("refused: muted".into()));
    }

    #[test]
    fn final_states_never_change_and_repeats_are_ignored() {
        let finals = [S::Done, S::Rejected("r".into()), S::Failed("f".into())];
        let events = [
            E::OfferDelivered,
            E::OfferRefused("x".into()),
            E::PeerAccepted,
            E::PeerRejected("x".into()),
            E::BlockRequested,
            E::UserAccepted,
            E::UserDeclined("x".into()),
            E::Completed,
            E::Failed("x".into()),
        ];
        for s in &finals {
            for e in &events {
                assert_eq!(transition(s, e), None, "{s:?} {e:?}");
            }
        }
        assert_eq!(transition(&S::Active, &E::PeerAccepted), None, "already active");
        assert_eq!(transition(&S::Active, &E::UserAccepted), None, "only an offered send is answered");
        assert_eq!(transition(&S::Offered, &E::OfferDelivered), None);
        assert_eq!(transition(&S::Active, &E::Failed("x".into())), Some(S::Failed("x".into())));
    }

    /// Any sequence of events: a final state is never left, and every change is one the event
    /// allows (checked against the node's `allowed_from` predicates, restated here).
    #[test]
    fn random_event_sequences_keep_the_rules() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(7);
        let event = |rng: &mut StdRng| match rng.gen_range(0..9) {
            0 => E::OfferDelivered,
            1 => E::OfferRefused("x".into()),
            2 => E::PeerAccepted,
            3 => E::PeerRejected("x".into()),
            4 => E::BlockRequested,
            5 => E::UserAccepted,
            6 => E::UserDeclined("x".into()),
            7 => E::Completed,
            _ => E::Failed("x".into()),
        };
        for _ in 0..2_000 {
            let mut s = if rng.gen_bool(0.5) { S::Queued } else { incoming(rng.gen_bool(0.5)) };
            for _ in 0..8 {
                let e = event(&mut rng);
                let Some(next) = transition(&s, &e) else { continue };
                assert!(!s.is_final() && next != s, "{s:?} --{e:?}--> {next:?}");
                let allowed = match &e {
                    E::OfferDelivered => s == S::Queued,
                    E::PeerAccepted | E::BlockRequested => matches!(s, S::Queued | S::Offered),
                    E::UserAccepted | E::UserDeclined(_) => s == S::Offered,
                    _ => true,
                };
                assert!(allowed, "{s:?} --{e:?}--> {next:?}");
                s = next;
            }
        }
    }

    #[test]
    fn blocks_by_state() {
        assert_eq!(block_answer(&S::Active), BlockAnswer::Serve);
        assert_eq!(block_answer(&S::Offered), BlockAnswer::ActivateAndServe);
        assert_eq!(block_answer(&S::Failed("why".into())), BlockAnswer::Refuse("why".into()));
        assert_eq!(block_answer(&S::Done), BlockAnswer::Refuse("this send is done".into()));
    }
}
