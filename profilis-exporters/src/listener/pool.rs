//! The connections of allowed clients: at most `max_connections` open at once, and which one
//! gives way when another client arrives and all are taken. A connection answering a request is
//! not closed for a newcomer; one that has not sent a complete request yet gives way first
//! (the oldest first), then one idle between keep-alive requests (the longest idle first), then
//! one whose response has waited longer than the stall limit for the client to take it (the
//! longest waiting first): a client that asks for a page and never reads it does not keep its
//! place. Only when every connection is answering a request within that limit is there no room.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

/// The open connections of allowed clients.
pub(super) struct Pool {
    state: Mutex<State>,
}

struct State {
    capacity: usize,
    /// How long a response may wait for its client to take it before the connection gives way
    /// to a newcomer.
    stall_limit: Duration,
    /// Advances on every admission and change of phase; orders connections by age.
    clock: u64,
    /// Every open connection, by id (the tick it was admitted at).
    open: HashMap<u64, Open>,
    /// Connections that have not sent a complete request head yet: tick of arrival -> id.
    waiting: BTreeMap<u64, u64>,
    /// Keep-alive connections between requests: tick their last response went out -> id.
    idle: BTreeMap<u64, u64>,
    /// Connections whose response is written but not yet taken by the client: tick it was
    /// handed at -> (when, id).
    sending: BTreeMap<u64, (Instant, u64)>,
}

struct Open {
    phase: Phase,
    /// Closes the connection's task; set right after the task is spawned.
    abort: Option<AbortHandle>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No complete request head yet; the key in `waiting`.
    Waiting(u64),
    /// A request is being answered.
    Busy,
    /// The response is handed to the connection, not yet all sent; the key in `sending`.
    Sending(u64),
    /// Between keep-alive requests; the key in `idle`.
    Idle(u64),
}

/// Every connection is answering a request: there is no room for another.
#[derive(Debug)]
pub(super) struct Full;

impl Pool {
    /// A pool of `capacity` places, where a response that waits longer than `stall_limit` for
    /// its client to take it no longer keeps its connection's place.
    pub(super) fn new(capacity: usize, stall_limit: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                capacity,
                stall_limit,
                clock: 0,
                open: HashMap::new(),
                waiting: BTreeMap::new(),
                idle: BTreeMap::new(),
                sending: BTreeMap::new(),
            }),
        })
    }

    /// The state, even if a panic elsewhere poisoned the lock: every change below leaves it
    /// consistent before anything that could panic.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for a new connection, closing the connection that gives way (see the
    /// module docs) when all places are taken.
    ///
    /// # Errors
    ///
    /// [`Full`] when every open connection is answering a request.
    pub(super) fn admit(self: &Arc<Self>) -> Result<Arc<Slot>, Full> {
        let (id, evicted) = {
            let mut state = self.state();
            let evicted = if state.open.len() >= state.capacity {
                let victim = state
                    .waiting
                    .first_key_value()
                    .or_else(|| state.idle.first_key_value())
                    .map(|(_, &id)| id)
                    .or_else(|| state.stalled())
                    .ok_or(Full)?;
                state.remove(victim).flatten()
            } else {
                None
            };
            let id = state.tick();
            state.waiting.insert(id, id);
            state.open.insert(
                id,
                Open {
                    phase: Phase::Waiting(id),
                    abort: None,
                },
            );
            (id, evicted)
        };
        // Outside the lock: dropping the victim's task takes it again.
        if let Some(abort) = evicted {
            abort.abort();
        }
        Ok(Arc::new(Slot {
            pool: Arc::clone(self),
            id,
            response_handed: AtomicBool::new(false),
        }))
    }
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Forgets a connection; returns what closes its task, if it was still open.
    fn remove(&mut self, id: u64) -> Option<Option<AbortHandle>> {
        let open = self.open.remove(&id)?;
        self.leave(open.phase);
        Some(open.abort)
    }

    /// The connection whose response has waited the longest for its client, if that is longer
    /// than the stall limit.
    fn stalled(&self) -> Option<u64> {
        let (_, &(since, id)) = self.sending.first_key_value()?;
        (since.elapsed() >= self.stall_limit).then_some(id)
    }

    /// Takes a connection out of the order of its phase.
    fn leave(&mut self, phase: Phase) {
        match phase {
            Phase::Waiting(key) => {
                self.waiting.remove(&key);
            }
            Phase::Idle(key) => {
                self.idle.remove(&key);
            }
            Phase::Sending(key) => {
                self.sending.remove(&key);
            }
            Phase::Busy => {}
        }
    }

    fn enter(&mut self, id: u64, next: Next) {
        let Some(phase) = self.open.get(&id).map(|open| open.phase) else {
            return; // evicted already
        };
        self.leave(phase);
        let phase = match next {
            Next::Busy => Phase::Busy,
            Next::Sending => {
                let key = self.tick();
                self.sending.insert(key, (Instant::now(), id));
                Phase::Sending(key)
            }
            Next::Idle => {
                let key = self.tick();
                self.idle.insert(key, id);
                Phase::Idle(key)
            }
        };
        if let Some(open) = self.open.get_mut(&id) {
            open.phase = phase;
        }
    }
}

/// The phase [`State::enter`] moves a connection to.
#[derive(Clone, Copy)]
enum Next {
    Busy,
    Sending,
    Idle,
}

/// One connection's place in the [`Pool`]; given back when the last clone is dropped, which is
/// when the connection's task ends, whatever ends it.
pub(super) struct Slot {
    pool: Arc<Pool>,
    id: u64,
    /// The last response has been handed to the connection; it counts as sent once the
    /// connection has flushed it.
    response_handed: AtomicBool,
}

impl Slot {
    /// Records what closes the connection's task when it has to give way.
    pub(super) fn attach(&self, abort: AbortHandle) {
        if let Some(open) = self.pool.state().open.get_mut(&self.id) {
            open.abort = Some(abort);
        }
    }

    /// A complete request head arrived: the connection is busy until its response is sent.
    pub(super) fn request_started(&self) {
        self.response_handed.store(false, Ordering::Relaxed);
        self.pool.state().enter(self.id, Next::Busy);
    }

    /// The whole response is in the connection's write buffer (its body was dropped): from now
    /// on it waits for the client to take it, for the stall limit at most.
    pub(super) fn response_handed(&self) {
        let mut state = self.pool.state();
        self.response_handed.store(true, Ordering::Relaxed);
        state.enter(self.id, Next::Sending);
    }

    /// The connection flushed its write buffer to the socket: a handed response is now sent,
    /// and the connection idle until the next request.
    pub(super) fn flushed(&self) {
        if self.response_handed.swap(false, Ordering::Relaxed) {
            self.pool.state().enter(self.id, Next::Idle);
        }
    }

    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.pool.state().open.contains_key(&self.id)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.state().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stall limit no test reaches.
    const NEVER: Duration = Duration::from_secs(24 * 60 * 60);

    fn admit(pool: &Arc<Pool>) -> Arc<Slot> {
        pool.admit().expect("room for a connection")
    }

    /// Marks a slot as having been sent a complete request and its response.
    fn serve(slot: &Slot) {
        slot.request_started();
        slot.response_handed();
        slot.flushed();
    }

    #[test]
    fn connections_within_the_capacity_are_all_kept() {
        let pool = Pool::new(3, NEVER);
        let slots: Vec<_> = (0..3).map(|_| admit(&pool)).collect();
        assert!(slots.iter().all(|slot| slot.is_open()));
    }

    #[test]
    fn when_full_the_oldest_connection_without_a_request_gives_way() {
        let pool = Pool::new(3, NEVER);
        let oldest = admit(&pool);
        let middle = admit(&pool);
        let newest = admit(&pool);
        let arriving = admit(&pool);
        assert!(!oldest.is_open());
        assert!(middle.is_open() && newest.is_open() && arriving.is_open());
        let next = admit(&pool);
        assert!(!middle.is_open());
        assert!(newest.is_open() && arriving.is_open() && next.is_open());
    }

    #[test]
    fn connections_without_a_request_give_way_before_idle_keep_alive_ones() {
        let pool = Pool::new(2, NEVER);
        let idle = admit(&pool);
        serve(&idle);
        let waiting = admit(&pool);
        let _arriving = admit(&pool);
        assert!(
            idle.is_open(),
            "an idle keep-alive connection gave way first"
        );
        assert!(!waiting.is_open());
    }

    #[test]
    fn the_longest_idle_connection_gives_way_when_none_is_waiting() {
        let pool = Pool::new(2, NEVER);
        let first = admit(&pool);
        let second = admit(&pool);
        serve(&second);
        serve(&first); // `second` has now been idle the longest
        let _arriving = admit(&pool);
        assert!(first.is_open());
        assert!(!second.is_open());
    }

    #[test]
    fn busy_connections_never_give_way_and_full_means_all_busy() {
        let pool = Pool::new(2, NEVER);
        let first = admit(&pool);
        let second = admit(&pool);
        first.request_started();
        second.request_started();
        assert!(pool.admit().is_err());
        assert!(first.is_open() && second.is_open());
        // A response handed but not yet flushed is still being sent.
        first.response_handed();
        assert!(pool.admit().is_err());
        first.flushed();
        let _arriving = admit(&pool);
        assert!(!first.is_open());
        assert!(second.is_open());
    }

    #[test]
    fn a_response_the_client_does_not_take_within_the_stall_limit_gives_way() {
        // A limit of zero: every handed response not yet flushed has waited long enough.
        let pool = Pool::new(3, Duration::ZERO);
        let answering = admit(&pool);
        let first_stalled = admit(&pool);
        let second_stalled = admit(&pool);
        for slot in [&answering, &first_stalled, &second_stalled] {
            slot.request_started();
        }
        assert!(
            pool.admit().is_err(),
            "a connection answering a request gave way"
        );
        first_stalled.response_handed();
        second_stalled.response_handed();
        // The response waiting the longest gives way first; the one being answered never.
        let arriving = admit(&pool);
        assert!(!first_stalled.is_open());
        assert!(second_stalled.is_open() && answering.is_open());
        // A response its client took leaves the connection idle, and its next request busy:
        // no longer one that gives way.
        second_stalled.flushed();
        second_stalled.request_started();
        arriving.request_started();
        assert!(
            pool.admit().is_err(),
            "a connection answering a request gave way"
        );
    }

    #[test]
    fn a_response_within_the_stall_limit_keeps_its_place() {
        let pool = Pool::new(1, NEVER);
        let slot = admit(&pool);
        slot.request_started();
        slot.response_handed();
        assert!(pool.admit().is_err());
        assert!(slot.is_open());
    }

    #[test]
    fn a_flush_without_a_handed_response_keeps_a_connection_busy() {
        let pool = Pool::new(1, NEVER);
        let slot = admit(&pool);
        slot.request_started();
        slot.flushed();
        assert!(pool.admit().is_err());
    }

    #[test]
    fn a_dropped_slot_frees_its_place() {
        let pool = Pool::new(1, NEVER);
        let slot = admit(&pool);
        slot.request_started();
        assert!(pool.admit().is_err());
        drop(slot);
        let again = admit(&pool);
        assert!(again.is_open());
    }

    #[test]
    fn an_evicted_slot_ignores_later_changes_and_its_drop() {
        let pool = Pool::new(1, NEVER);
        let evicted = admit(&pool);
        let current = admit(&pool);
        assert!(!evicted.is_open());
        evicted.request_started();
        serve(&evicted);
        drop(evicted);
        assert!(current.is_open());
        current.request_started();
        assert!(
            pool.admit().is_err(),
            "the evicted slot freed a place twice"
        );
    }
}
