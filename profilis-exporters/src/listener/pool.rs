//! The connections of allowed clients: at most `max_connections` open at once, and which one
//! gives way when another client arrives and all are taken. A connection answering a request is
//! never closed for a newcomer; one that has not sent a complete request yet gives way first
//! (the oldest first), then one idle between keep-alive requests (the longest idle first). Only
//! when every connection is answering a request is there no room.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::AbortHandle;

/// The open connections of allowed clients.
pub(super) struct Pool {
    state: Mutex<State>,
}

struct State {
    capacity: usize,
    /// Advances on every admission and change of phase; orders connections by age.
    clock: u64,
    /// Every open connection, by id (the tick it was admitted at).
    open: HashMap<u64, Open>,
    /// Connections that have not sent a complete request head yet: tick of arrival -> id.
    waiting: BTreeMap<u64, u64>,
    /// Keep-alive connections between requests: tick their last response went out -> id.
    idle: BTreeMap<u64, u64>,
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
    /// Between keep-alive requests; the key in `idle`.
    Idle(u64),
}

/// Every connection is answering a request: there is no room for another.
#[derive(Debug)]
pub(super) struct Full;

impl Pool {
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                capacity,
                clock: 0,
                open: HashMap::new(),
                waiting: BTreeMap::new(),
                idle: BTreeMap::new(),
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

    /// Takes a connection out of the order of its phase.
    fn leave(&mut self, phase: Phase) {
        match phase {
            Phase::Waiting(key) => {
                self.waiting.remove(&key);
            }
            Phase::Idle(key) => {
                self.idle.remove(&key);
            }
            Phase::Busy => {}
        }
    }

    fn enter(&mut self, id: u64, busy: bool) {
        let Some(phase) = self.open.get(&id).map(|open| open.phase) else {
            return; // evicted already
        };
        self.leave(phase);
        let phase = if busy {
            Phase::Busy
        } else {
            let key = self.tick();
            self.idle.insert(key, id);
            Phase::Idle(key)
        };
        if let Some(open) = self.open.get_mut(&id) {
            open.phase = phase;
        }
    }
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
        self.pool.state().enter(self.id, true);
    }

    /// The whole response is in the connection's write buffer (its body was dropped).
    pub(super) fn response_handed(&self) {
        self.response_handed.store(true, Ordering::Relaxed);
    }

    /// The connection flushed its write buffer to the socket: a handed response is now sent,
    /// and the connection idle until the next request.
    pub(super) fn flushed(&self) {
        if self.response_handed.swap(false, Ordering::Relaxed) {
            self.pool.state().enter(self.id, false);
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
        let pool = Pool::new(3);
        let slots: Vec<_> = (0..3).map(|_| admit(&pool)).collect();
        assert!(slots.iter().all(|slot| slot.is_open()));
    }

    #[test]
    fn when_full_the_oldest_connection_without_a_request_gives_way() {
        let pool = Pool::new(3);
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
        let pool = Pool::new(2);
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
        let pool = Pool::new(2);
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
        let pool = Pool::new(2);
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
    fn a_flush_without_a_handed_response_keeps_a_connection_busy() {
        let pool = Pool::new(1);
        let slot = admit(&pool);
        slot.request_started();
        slot.flushed();
        assert!(pool.admit().is_err());
    }

    #[test]
    fn a_dropped_slot_frees_its_place() {
        let pool = Pool::new(1);
        let slot = admit(&pool);
        slot.request_started();
        assert!(pool.admit().is_err());
        drop(slot);
        let again = admit(&pool);
        assert!(again.is_open());
    }

    #[test]
    fn an_evicted_slot_ignores_later_changes_and_its_drop() {
        let pool = Pool::new(1);
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
