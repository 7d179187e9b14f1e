//! The time a core runs on: the real clock, or a virtual one that `gatehouse what-if` moves to each injected
//! message's receive time, so the timers of the copy (a silent device going offline, maintenance runs, the
//! occupancy reset, an alarm's condition lasting too long) fire on the injected clock instead of the wall's.

use jiff::Timestamp;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct Clock(Option<Arc<watch::Sender<Timestamp>>>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => write!(f, "Clock::Real"),
            Some(time) => write!(f, "Clock::Virtual({})", *time.borrow()),
        }
    }
}

impl Clock {
    /// The wall clock: what every serving core runs on.
    pub fn real() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `at` until [`Clock::advance_to`] moves it.
    pub fn virtual_at(at: Timestamp) -> Clock {
        Clock(Some(Arc::new(watch::channel(at).0)))
    }

    pub fn now(&self) -> Timestamp {
        match &self.0 {
            None => Timestamp::now(),
            Some(time) => *time.borrow(),
        }
    }

    pub fn is_virtual(&self) -> bool {
        self.0.is_some()
    }

    /// Its moves, for a virtual clock.
    pub fn watch(&self) -> Option<watch::Receiver<Timestamp>> {
        self.0.as_ref().map(|time| time.subscribe())
    }

    /// Moves a virtual clock forward to `at` (never back); the real clock cannot be moved.
    pub fn advance_to(&self, at: Timestamp) {
        if let Some(time) = &self.0 {
            time.send_if_modified(|now| {
                let later = at > *now;
                if later {
                    *now = at;
                }
                later
            });
        }
    }
}
