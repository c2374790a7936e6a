//! Slows down password guessing without locking the real user out (the OWASP "device
//! cookie" approach).
//!
//! Every attempt is counted as a failure the moment it starts ([`LoginThrottle::begin`]),
//! before its password is checked, and taken back only when it succeeds: N parallel
//! attempts are N attempts, so no more than a limit allows are ever checked. What an
//! attempt counts against depends on who makes it:
//!
//! - A browser with a valid device cookie for the name (see [`super::device`]) counts
//!   against that device only: someone else's failures never block it, and a stolen
//!   cookie guesses no faster than one browser.
//! - Any other browser counts against the name at its address ([`PER_NAME_AND_ADDRESS`]),
//!   its address across names ([`PER_ADDRESS`]), and the name from every unknown browser
//!   ([`PER_NAME`], much higher: it stops a guessing botnet, and only unknown browsers
//!   are refused by it).
//! - A name that cannot be a user name counts against the address only, so junk names
//!   create no state of their own.
//!
//! In memory, per process (a restart forgets it), bounded per kind of key, and on the
//! injected clock so tests control time.

mod counters;

use std::net::IpAddr;
use std::sync::Mutex;

use chrono::Duration;

use self::counters::Counters;
pub use self::counters::Policy;
use super::device::DeviceId;
use crate::clock::SharedClock;

/// One name from one address: five failures in a row, then a pause of 30 s that doubles
/// with each further failure, up to 15 min.
pub const PER_NAME_AND_ADDRESS: Policy = Policy {
    free_failures: 5,
    window: Duration::minutes(15),
    first_pause: Duration::seconds(30),
    max_pause: Duration::minutes(15),
};

/// One address, whatever the names: room for a team behind one NAT, not for a list of
/// names.
pub const PER_ADDRESS: Policy = Policy {
    free_failures: 20,
    window: Duration::minutes(15),
    first_pause: Duration::minutes(1),
    max_pause: Duration::minutes(15),
};

/// One name from every browser without its device cookie: 100 failures an hour.
pub const PER_NAME: Policy = Policy {
    free_failures: 100,
    window: Duration::hours(1),
    first_pause: Duration::minutes(5),
    max_pause: Duration::hours(1),
};

/// One device cookie, wherever it is used from: the pace of one browser.
pub const PER_DEVICE: Policy = PER_NAME_AND_ADDRESS;

/// Keys kept at most per kind (about 200 bytes each).
const CAPACITY: usize = 10_000;

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    NameAndAddress,
    Address,
    /// The name-wide limit: a browser that signed in as this user before is not refused.
    Name,
    Device,
}

/// An attempt refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Until the longest pause that applies ends (whole seconds, at least one).
    pub wait: std::time::Duration,
    /// The limit behind that pause.
    pub limit: Limit,
}

/// An attempt under way, counted as failed until [`LoginThrottle::succeeded`] or
/// [`LoginThrottle::withdraw`] says otherwise. Dropping it leaves it counted: an attempt
/// whose client went away mid-check still cost a guess.
#[derive(Debug)]
#[must_use = "an attempt stays counted as failed unless it is settled"]
pub struct Reservation {
    keys: Vec<Key>,
}

/// What an attempt counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    NameAndAddress(String, IpAddr),
    Address(IpAddr),
    Name(String),
    Device(String),
}

/// The counters of each limit, keyed by the [`Key`]s of that limit.
#[derive(Debug)]
struct Tables {
    names_and_addresses: Counters<Key>,
    addresses: Counters<Key>,
    names: Counters<Key>,
    devices: Counters<Key>,
}

impl Tables {
    fn new() -> Self {
        Self {
            names_and_addresses: Counters::new(PER_NAME_AND_ADDRESS, CAPACITY),
            addresses: Counters::new(PER_ADDRESS, CAPACITY),
            names: Counters::new(PER_NAME, CAPACITY),
            devices: Counters::new(PER_DEVICE, CAPACITY),
        }
    }

    fn of(&mut self, key: &Key) -> &mut Counters<Key> {
        match key.limit() {
            Limit::NameAndAddress => &mut self.names_and_addresses,
            Limit::Address => &mut self.addresses,
            Limit::Name => &mut self.names,
            Limit::Device => &mut self.devices,
        }
    }

    /// After a success: whoever signed in here knows the password, so this browser's
    /// own count starts over. Address- and name-wide counts only lose this attempt: one
    /// known password must not reset guessing from that address or at that name.
    fn settle_success(&mut self, key: &Key) {
        match key.limit() {
            Limit::NameAndAddress | Limit::Device => self.of(key).forget(key),
            Limit::Address | Limit::Name => self.of(key).take_back(key),
        }
    }
}

impl Key {
    fn limit(&self) -> Limit {
        match self {
            Self::NameAndAddress(..) => Limit::NameAndAddress,
            Self::Address(_) => Limit::Address,
            Self::Name(_) => Limit::Name,
            Self::Device(_) => Limit::Device,
        }
    }
}

/// The sign-in throttle.
pub struct LoginThrottle {
    clock: SharedClock,
    // A std Mutex: held for a few map operations, never across an await.
    tables: Mutex<Tables>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl LoginThrottle {
    /// An empty throttle on `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            tables: Mutex::new(Tables::new()),
        }
    }

    /// Starts an attempt to sign in as `name` from `address` (when known), by a browser
    /// showing `device` (a valid device cookie for `name`, if any): refused when a pause
    /// applies, else counted as failed at once.
    ///
    /// # Errors
    /// The [`Refusal`] with the longest remaining pause.
    pub fn begin(
        &self,
        name: &str,
        address: Option<IpAddr>,
        device: Option<&DeviceId>,
    ) -> Result<Reservation, Refusal> {
        let keys = keys(name, address.map(address_key), device);
        let now = self.clock.now();
        let mut tables = self.lock();
        // The name-wide limit first among equals: its message tells the user what helps.
        let longest = keys
            .iter()
            .filter_map(|key| Some((tables.of(key).paused_until(key, now)?, key.limit())))
            .max_by_key(|(until, limit)| (*until, *limit == Limit::Name));
        if let Some((until, limit)) = longest {
            return Err(Refusal {
                wait: whole_seconds(until - now),
                limit,
            });
        }
        for key in &keys {
            tables.of(key).count(key.clone(), now);
        }
        Ok(Reservation { keys })
    }

    /// The attempt's password was right.
    pub fn succeeded(&self, reservation: Reservation) {
        let mut tables = self.lock();
        for key in &reservation.keys {
            tables.settle_success(key);
        }
    }

    /// The attempt's password was never checked (the server was too busy): it is not
    /// counted.
    pub fn withdraw(&self, reservation: Reservation) {
        let mut tables = self.lock();
        for key in &reservation.keys {
            tables.of(key).take_back(key);
        }
    }

    /// The attempt failed: it stays counted (what dropping it does too, said out loud).
    pub fn failed(&self, reservation: Reservation) {
        drop(reservation);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // The tables hold counters only; a panic elsewhere cannot leave them inconsistent.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What an attempt counts against (see the module's documentation).
fn keys(name: &str, address: Option<IpAddr>, device: Option<&DeviceId>) -> Vec<Key> {
    if crate::users::validate_name(name).is_err() {
        return address.map(Key::Address).into_iter().collect();
    }
    if let Some(device) = device {
        return vec![Key::Device(device.as_str().to_owned())];
    }
    let mut keys = vec![Key::Name(name.to_owned())];
    if let Some(address) = address {
        keys.push(Key::NameAndAddress(name.to_owned(), address));
        keys.push(Key::Address(address));
    }
    keys
}

/// The address as counted: IPv6 clients by their /64, the smallest network one is
/// normally given (anyone holds 2^64 addresses of it).
fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1_u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn whole_seconds(wait: Duration) -> std::time::Duration {
    let seconds = (wait.num_milliseconds() + 999) / 1000;
    std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(1).max(1))
}

#[cfg(test)]
mod tests;
