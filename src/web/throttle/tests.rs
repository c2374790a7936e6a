use std::sync::Arc;

use chrono::DateTime;

use super::*;
use crate::clock::{Clock as _, ManualClock};
use crate::web::device;
use crate::web::signing::Signer;

fn throttle() -> (LoginThrottle, ManualClock) {
    let clock = ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).expect("a time"));
    (LoginThrottle::new(Arc::new(clock.clone())), clock)
}

fn address(last: u8) -> Option<IpAddr> {
    Some([10, 0, 0, last].into())
}

/// A device cookie's id, as the sign-in form would recognise it.
fn a_device(name: &str, clock: &ManualClock) -> DeviceId {
    let signer = Signer::from_key(b"0123456789abcdef0123456789abcdef");
    let set = device::issue(&signer, name, clock.now(), false).expect("a cookie");
    let pair = set
        .to_str()
        .expect("text")
        .split(';')
        .next()
        .expect("a pair");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::COOKIE,
        pair.parse().expect("a header value"),
    );
    device::recognise(&signer, &headers, false, name, clock.now()).expect("recognised")
}

/// `n` failed attempts.
fn fail(throttle: &LoginThrottle, n: u32, name: &str, from: Option<IpAddr>) {
    for _ in 0..n {
        let attempt = throttle.begin(name, from, None).expect("not refused");
        throttle.failed(attempt);
    }
}

#[test]
fn five_failures_start_a_pause_of_30_s_that_doubles() {
    let (throttle, clock) = throttle();
    fail(&throttle, 5, "ann", address(1));
    let refusal = throttle.begin("ann", address(1), None).expect_err("paused");
    assert_eq!(refusal.wait, std::time::Duration::from_secs(30));
    assert_eq!(refusal.limit, Limit::NameAndAddress);
    clock.advance(Duration::seconds(30));
    fail(&throttle, 1, "ann", address(1));
    let refusal = throttle.begin("ann", address(1), None).expect_err("paused");
    assert_eq!(refusal.wait, std::time::Duration::from_secs(60));
}

#[test]
fn attempts_count_from_the_moment_they_start() {
    let (throttle, _clock) = throttle();
    // Forty attempts under way at once: none has failed yet, and still only the first
    // five may go on to a password check.
    let started: Vec<_> = (0..40)
        .map(|_| throttle.begin("ann", address(1), None))
        .collect();
    let let_through = started.iter().filter(|attempt| attempt.is_ok()).count();
    assert_eq!(let_through, 5);
}

#[test]
fn a_success_ends_this_browsers_pause_but_not_the_addresss() {
    let (throttle, _clock) = throttle();
    // Many names from one address: the address-wide count.
    for n in 0..20 {
        fail(&throttle, 1, &format!("user{n}"), address(2));
    }
    assert_eq!(
        throttle
            .begin("someone", address(2), None)
            .expect_err("address paused")
            .limit,
        Limit::Address
    );
    assert!(throttle.begin("someone", address(3), None).is_ok());

    let (throttle, _clock) = self::throttle();
    fail(&throttle, 4, "ann", address(2));
    let right = throttle
        .begin("ann", address(2), None)
        .expect("a fifth try");
    throttle.succeeded(right);
    fail(&throttle, 4, "ann", address(2));
    assert!(throttle.begin("ann", address(2), None).is_ok());
}

#[test]
fn failures_at_one_address_do_not_refuse_the_name_at_another() {
    let (throttle, _clock) = throttle();
    fail(&throttle, 5, "admin", address(1));
    assert!(throttle.begin("admin", address(1), None).is_err());
    assert!(throttle.begin("admin", address(2), None).is_ok());
}

#[test]
fn the_name_wide_limit_refuses_unknown_browsers_only() {
    let (throttle, clock) = throttle();
    let known = a_device("admin", &clock);
    for n in 0..20 {
        fail(&throttle, 5, "admin", address(n));
    }
    let refusal = throttle
        .begin("admin", address(200), None)
        .expect_err("name-wide pause");
    assert_eq!(refusal.limit, Limit::Name);
    assert_eq!(refusal.wait, std::time::Duration::from_secs(5 * 60));
    assert!(throttle.begin("admin", address(200), Some(&known)).is_ok());
}

#[test]
fn a_devices_own_failures_pause_that_device_wherever_it_is_used() {
    let (throttle, clock) = throttle();
    let stolen = a_device("admin", &clock);
    let other = a_device("admin", &clock);
    for n in 0..5 {
        let attempt = throttle
            .begin("admin", address(n), Some(&stolen))
            .expect("not refused");
        throttle.failed(attempt);
    }
    let refusal = throttle
        .begin("admin", address(99), Some(&stolen))
        .expect_err("the device is paused");
    assert_eq!(refusal.limit, Limit::Device);
    assert!(throttle.begin("admin", address(99), Some(&other)).is_ok());
    // Its failures were not the name's: unknown browsers are not refused for them.
    assert!(throttle.begin("admin", address(98), None).is_ok());
}

#[test]
fn an_attempt_that_was_never_checked_is_not_counted() {
    let (throttle, _clock) = throttle();
    for _ in 0..10 {
        let attempt = throttle
            .begin("ann", address(1), None)
            .expect("not refused");
        throttle.withdraw(attempt);
    }
    assert!(throttle.begin("ann", address(1), None).is_ok());
}

#[test]
fn failures_older_than_the_window_are_forgotten() {
    let (throttle, clock) = throttle();
    fail(&throttle, 4, "ann", address(1));
    clock.advance(PER_NAME_AND_ADDRESS.window + Duration::seconds(1));
    fail(&throttle, 4, "ann", address(1));
    assert!(throttle.begin("ann", address(1), None).is_ok());
}

#[test]
fn invalid_names_count_against_the_address_only_and_leave_no_name_behind() {
    let (throttle, _clock) = throttle();
    let long = "a".repeat(10_000);
    for name in [long.as_str(), "Admin", "", "a b", "ann\u{0}"] {
        fail(&throttle, 1, name, address(1));
    }
    let tables = throttle.lock();
    assert_eq!(tables.names.len(), 0);
    assert_eq!(tables.names_and_addresses.len(), 0);
    assert_eq!(tables.addresses.len(), 1);
}

#[test]
fn ipv6_clients_are_counted_by_their_64_bit_prefix() {
    let (throttle, _clock) = throttle();
    for n in 0..5_u16 {
        let address = IpAddr::V6([0x2001, 0xdb8, 0, 1, 0, 0, 0, n].into());
        fail(&throttle, 1, "ann", Some(address));
    }
    let neighbour = IpAddr::V6([0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 7].into());
    assert!(throttle.begin("ann", Some(neighbour), None).is_err());
    let elsewhere = IpAddr::V6([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1].into());
    assert!(throttle.begin("ann", Some(elsewhere), None).is_ok());
}

#[test]
fn every_pause_ends_within_its_window() {
    for policy in [PER_NAME_AND_ADDRESS, PER_ADDRESS, PER_NAME, PER_DEVICE] {
        assert!(policy.max_pause <= policy.window, "{policy:?}");
        assert!(policy.free_failures > 0, "{policy:?}");
    }
}

#[test]
fn a_flood_of_names_and_addresses_keeps_every_table_bounded() {
    let (throttle, clock) = throttle();
    for n in 0..25_000_u32 {
        let from = IpAddr::from(n.to_be_bytes());
        if let Ok(attempt) = throttle.begin(&format!("user{n}"), Some(from), None) {
            throttle.failed(attempt);
        }
        clock.advance(Duration::milliseconds(1));
    }
    let tables = throttle.lock();
    for table in [
        &tables.names,
        &tables.names_and_addresses,
        &tables.addresses,
        &tables.devices,
    ] {
        assert!(table.len() <= CAPACITY, "{}", table.len());
    }
    assert!(tables.names.len() > CAPACITY / 2, "recent names are kept");
}
