//! Out-of-order delivery reports in, an in-order confirmed position out.

use std::collections::VecDeque;

/// One source transaction whose events are being delivered.
#[derive(Debug, Clone, Copy)]
struct Transaction {
    /// The position to confirm once this and every earlier transaction is delivered.
    end_position: u64,
    /// Events sent and not yet acknowledged.
    pending: u64,
    /// Every event of the transaction has been sent.
    sealed: bool,
}

impl Transaction {
    fn done(&self) -> bool {
        self.sealed && self.pending == 0
    }
}

/// Turns Kafka's per-message acknowledgements, which arrive in any order across partitions,
/// into the position up to which everything has been written.
///
/// Tickets are transaction sequence numbers; the open transactions sit in a queue indexed by
/// `ticket - front`, so every call is O(1) (amortised: a completed transaction is popped once).
/// The confirmed position only moves when the *oldest* open transaction completes, so it never
/// passes an event Kafka has not acknowledged, whatever the later transactions do.
///
/// Misuse (an unknown ticket, more acknowledgements than events sent, sending after sealing)
/// would mean confirming data that was never written, so it panics instead.
#[derive(Debug, Clone, Default)]
pub struct AckTracker {
    open: VecDeque<Transaction>,
    /// Ticket of `open[0]` (or of the next transaction when none is open).
    front: u64,
    confirmed: Option<u64>,
    in_flight: u64,
}

impl AckTracker {
    /// An empty tracker; the first ticket is 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a transaction that ends at `end_position` (for PostgreSQL: its commit's end LSN,
    /// so positions increase with tickets) and returns its ticket.
    pub fn begin(&mut self, end_position: u64) -> u64 {
        let ticket = self.next_ticket();
        self.open.push_back(Transaction {
            end_position,
            pending: 0,
            sealed: false,
        });
        ticket
    }

    /// Counts one more event of transaction `ticket` handed to the producer.
    ///
    /// # Panics
    /// If the transaction is not open or already sealed.
    pub fn sent(&mut self, ticket: u64) {
        let transaction = self.get_mut(ticket, "sent");
        assert!(
            !transaction.sealed,
            "AckTracker::sent: transaction {ticket} is already sealed"
        );
        transaction.pending += 1;
        self.in_flight += 1;
    }

    /// Says every event of transaction `ticket` has been sent. Returns the new confirmed
    /// position when that completes the oldest open transaction(s): an empty transaction, or
    /// one whose events were all acknowledged already.
    ///
    /// # Panics
    /// If the transaction is not open.
    pub fn seal(&mut self, ticket: u64) -> Option<u64> {
        self.get_mut(ticket, "seal").sealed = true;
        self.advance()
    }

    /// Like [`AckTracker::seal`], for a transaction whose end position is known only when it
    /// ends (PostgreSQL's commit end LSN arrives with the Commit message, after the changes):
    /// the position given to `begin` is replaced by `end_position`.
    ///
    /// # Panics
    /// If the transaction is not open.
    pub fn seal_at(&mut self, ticket: u64, end_position: u64) -> Option<u64> {
        self.get_mut(ticket, "seal_at").end_position = end_position;
        self.seal(ticket)
    }

    /// Records one acknowledged event of transaction `ticket`. Returns the new confirmed
    /// position when the oldest open transactions are now sealed and fully acknowledged: the
    /// end position of the newest of them.
    ///
    /// # Panics
    /// If the transaction is not open or has no unacknowledged event.
    pub fn acknowledged(&mut self, ticket: u64) -> Option<u64> {
        let transaction = self.get_mut(ticket, "acknowledged");
        assert!(
            transaction.pending > 0,
            "AckTracker::acknowledged: transaction {ticket} has no event in flight"
        );
        transaction.pending -= 1;
        self.in_flight -= 1;
        self.advance()
    }

    /// The end position of the newest transaction that, with all before it, is fully
    /// acknowledged; `None` before the first one completes.
    pub fn confirmed(&self) -> Option<u64> {
        self.confirmed
    }

    /// Events sent and not yet acknowledged, over all open transactions.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Transactions begun and not yet complete (or complete but behind an incomplete one).
    pub fn open_transactions(&self) -> usize {
        self.open.len()
    }

    /// The ticket the next [`AckTracker::begin`] returns.
    pub fn next_ticket(&self) -> u64 {
        // usize -> u64 cannot fail on the 64-bit targets this crate builds for.
        self.front + u64::try_from(self.open.len()).unwrap_or(u64::MAX)
    }

    fn get_mut(&mut self, ticket: u64, call: &str) -> &mut Transaction {
        let index = ticket
            .checked_sub(self.front)
            .and_then(|index| usize::try_from(index).ok())
            .filter(|index| *index < self.open.len());
        let Some(index) = index else {
            panic!(
                "AckTracker::{call}: ticket {ticket} is not an open transaction (open: {}..{})",
                self.front,
                self.next_ticket()
            );
        };
        &mut self.open[index]
    }

    /// Pops the completed transactions at the front; only these may move the position.
    fn advance(&mut self) -> Option<u64> {
        let mut advanced = None;
        while let Some(front) = self.open.front().copied()
            && front.done()
        {
            self.open.pop_front();
            self.front += 1;
            advanced = Some(front.end_position);
        }
        if advanced.is_some() {
            self.confirmed = advanced;
        }
        advanced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(100);
        tracker.sent(a);
        tracker.sent(a);
        assert_eq!(tracker.seal(a), None);
        assert_eq!(tracker.in_flight(), 2);
        assert_eq!(tracker.acknowledged(a), None);
        assert_eq!(tracker.acknowledged(a), Some(100));
        assert_eq!(tracker.confirmed(), Some(100));
        assert_eq!(tracker.open_transactions(), 0);
        assert_eq!(tracker.in_flight(), 0);

        let b = tracker.begin(200);
        assert_eq!(b, a + 1);
        tracker.sent(b);
        assert_eq!(tracker.acknowledged(b), None, "not sealed yet");
        assert_eq!(
            tracker.seal(b),
            Some(200),
            "sealing after the last ack completes it"
        );
    }

    #[test]
    fn later_transactions_wait_for_earlier_ones() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(10);
        tracker.sent(a);
        tracker.sent(a);
        tracker.seal(a);
        let b = tracker.begin(20);
        tracker.sent(b);
        tracker.seal(b);
        let c = tracker.begin(30);
        tracker.sent(c);
        tracker.seal(c);

        assert_eq!(tracker.acknowledged(c), None);
        assert_eq!(tracker.acknowledged(b), None);
        assert_eq!(tracker.acknowledged(a), None);
        assert_eq!(tracker.confirmed(), None);
        assert_eq!(tracker.open_transactions(), 3);
        // The last event of the oldest transaction releases all three at once.
        assert_eq!(tracker.acknowledged(a), Some(30));
        assert_eq!(tracker.open_transactions(), 0);
    }

    #[test]
    fn an_end_position_given_at_seal_replaces_the_one_given_at_begin() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(0);
        tracker.sent(a);
        assert_eq!(tracker.seal_at(a, 5), None);
        assert_eq!(tracker.acknowledged(a), Some(5));
    }

    #[test]
    fn empty_transactions() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(1);
        assert_eq!(tracker.seal(a), Some(1), "nothing before it, nothing in it");

        let b = tracker.begin(2);
        tracker.sent(b);
        tracker.seal(b);
        let c = tracker.begin(3);
        assert_eq!(tracker.seal(c), None, "waits for b");
        let d = tracker.begin(4);
        assert_eq!(tracker.seal(d), None);
        assert_eq!(tracker.acknowledged(b), Some(4));
        assert_eq!(tracker.confirmed(), Some(4));
    }

    #[test]
    fn unsealed_front_blocks_even_when_fully_acknowledged() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(1);
        tracker.sent(a);
        let b = tracker.begin(2);
        assert_eq!(tracker.seal(b), None);
        assert_eq!(tracker.acknowledged(a), None, "a may still send events");
        assert_eq!(tracker.seal(a), Some(2));
    }

    #[test]
    #[should_panic(expected = "not an open transaction")]
    fn acknowledging_a_completed_transaction_panics() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(1);
        tracker.sent(a);
        tracker.seal(a);
        tracker.acknowledged(a);
        tracker.acknowledged(a);
    }

    #[test]
    #[should_panic(expected = "no event in flight")]
    fn more_acknowledgements_than_events_panics() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(1);
        tracker.sent(a);
        tracker.acknowledged(a);
        tracker.acknowledged(a);
    }

    #[test]
    #[should_panic(expected = "already sealed")]
    fn sending_after_sealing_panics() {
        let mut tracker = AckTracker::new();
        let a = tracker.begin(1);
        tracker.sent(a);
        tracker.seal(a);
        tracker.sent(a);
    }

    /// A reference model: a transaction is done when sealed and all its events are delivered;
    /// the confirmed position is the end of the longest done prefix.
    #[derive(Clone)]
    struct Model {
        /// Events per transaction.
        sizes: Vec<u64>,
        /// The pipeline's program, in order: (transaction, step) where step 0 is begin,
        /// 1..=size are sends and size+1 is seal.
        program: Vec<(usize, u64)>,
    }

    #[derive(Clone)]
    struct State {
        tracker: AckTracker,
        next_op: usize,
        tickets: Vec<u64>,
        sealed: Vec<bool>,
        delivered: Vec<u64>,
        /// Sent, not yet delivered: (transaction index).
        undelivered: Vec<usize>,
    }

    fn end_position(transaction: usize) -> u64 {
        u64::try_from(transaction).unwrap() * 10 + 10
    }

    impl Model {
        fn new(sizes: &[u64]) -> Self {
            let mut program = Vec::new();
            for (transaction, size) in sizes.iter().enumerate() {
                for step in 0..=size + 1 {
                    program.push((transaction, step));
                }
            }
            Self {
                sizes: sizes.to_vec(),
                program,
            }
        }

        fn expected(&self, state: &State) -> Option<u64> {
            let mut confirmed = None;
            for transaction in 0..state.tickets.len() {
                if state.sealed[transaction]
                    && state.delivered[transaction] == self.sizes[transaction]
                {
                    confirmed = Some(end_position(transaction));
                } else {
                    break;
                }
            }
            confirmed
        }

        fn start(&self) -> State {
            State {
                tracker: AckTracker::new(),
                next_op: 0,
                tickets: Vec::new(),
                sealed: Vec::new(),
                delivered: Vec::new(),
                undelivered: Vec::new(),
            }
        }

        /// Runs the next program operation, checking what the tracker says.
        fn step_program(&self, state: &mut State) {
            let (transaction, step) = self.program[state.next_op];
            state.next_op += 1;
            let before = state.tracker.confirmed();
            let returned = if step == 0 {
                let ticket = state.tracker.begin(end_position(transaction));
                state.tickets.push(ticket);
                state.sealed.push(false);
                state.delivered.push(0);
                None
            } else if step <= self.sizes[transaction] {
                state.tracker.sent(state.tickets[transaction]);
                state.undelivered.push(transaction);
                None
            } else {
                state.sealed[transaction] = true;
                state.tracker.seal(state.tickets[transaction])
            };
            self.check(state, before, returned);
        }

        /// Delivers the `index`th undelivered event.
        fn deliver(&self, state: &mut State, index: usize) {
            let transaction = state.undelivered.swap_remove(index);
            state.delivered[transaction] += 1;
            let before = state.tracker.confirmed();
            let returned = state.tracker.acknowledged(state.tickets[transaction]);
            self.check(state, before, returned);
        }

        fn check(&self, state: &State, before: Option<u64>, returned: Option<u64>) {
            let expected = self.expected(state);
            assert_eq!(state.tracker.confirmed(), expected);
            let moved = expected != before;
            assert_eq!(returned, if moved { expected } else { None });
            let in_flight: u64 = state.undelivered.len().try_into().unwrap();
            assert_eq!(state.tracker.in_flight(), in_flight);
        }

        fn finished(&self, state: &State) {
            let last = self.sizes.len() - 1;
            assert_eq!(state.tracker.confirmed(), Some(end_position(last)));
            assert_eq!(state.tracker.open_transactions(), 0);
            assert_eq!(state.tracker.in_flight(), 0);
        }

        /// Every interleaving of the program with the deliveries of sent events.
        fn explore(&self, state: &State, leaves: &mut u64) {
            if state.next_op == self.program.len() && state.undelivered.is_empty() {
                self.finished(state);
                *leaves += 1;
                return;
            }
            if state.next_op < self.program.len() {
                let mut next = state.clone();
                self.step_program(&mut next);
                self.explore(&next, leaves);
            }
            for index in 0..state.undelivered.len() {
                let mut next = state.clone();
                self.deliver(&mut next, index);
                self.explore(&next, leaves);
            }
        }
    }

    #[test]
    fn every_interleaving_matches_the_model() {
        let shapes: &[&[u64]] = &[
            &[0],
            &[1],
            &[0, 0, 0],
            &[2, 0, 1],
            &[0, 2, 0, 1],
            &[1, 1, 1, 1],
            &[3, 0, 2],
        ];
        // Counted by hand: [1] delivers after the send or after the seal; [2] has 4 slots for
        // the first delivery times 2 orders of seal and second delivery.
        for (sizes, expected) in [(&[1][..], 2), (&[2][..], 8)] {
            let model = Model::new(sizes);
            let mut leaves = 0;
            model.explore(&model.start(), &mut leaves);
            assert_eq!(leaves, expected, "{sizes:?}");
        }
        for sizes in shapes {
            let model = Model::new(sizes);
            let mut leaves = 0;
            model.explore(&model.start(), &mut leaves);
            assert!(leaves > 0, "{sizes:?}");
        }
    }

    #[test]
    fn long_random_runs_match_the_model() {
        // xorshift: deterministic, no dependency.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % u64::try_from(bound).unwrap()).unwrap()
        };
        for _ in 0..20 {
            let sizes: Vec<u64> = (0..200)
                .map(|_| u64::try_from(random(5)).unwrap())
                .collect();
            let model = Model::new(&sizes);
            let mut state = model.start();
            while state.next_op < model.program.len() || !state.undelivered.is_empty() {
                let deliver = !state.undelivered.is_empty()
                    && (state.next_op == model.program.len() || random(3) == 0);
                if deliver {
                    let index = random(state.undelivered.len());
                    model.deliver(&mut state, index);
                } else {
                    model.step_program(&mut state);
                }
            }
            model.finished(&state);
        }
    }
}
