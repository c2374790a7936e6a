//! The leadership lease in the store, on both backends (see
//! [`crate::support::store_suite`]), with the database's time given by the test.

use batchboard::store::LeaderTerm;
use chrono::{DateTime, Duration, Utc};

use crate::support::{TestStore, store_suite};

const LEASE: &str = "scheduler";

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 500_000).expect("a valid time")
        + Duration::seconds(seconds)
}

fn term() -> Duration {
    Duration::seconds(15)
}

async fn ask(store: &TestStore, candidate: &str, seconds: i64) -> LeaderTerm {
    store
        .claim_leadership(LEASE, candidate, term(), at(seconds))
        .await
        .expect("the lease answers")
        .expect("someone holds it")
}

async fn competing_candidates_elect_exactly_one_leader(store: TestStore) {
    let candidates: Vec<String> = (0..8).map(|n| format!("candidate-{n}")).collect();
    let answers = futures::future::join_all(
        candidates
            .iter()
            .map(|candidate| store.claim_leadership(LEASE, candidate, term(), at(0))),
    )
    .await;
    let terms: Vec<LeaderTerm> = answers
        .into_iter()
        .map(|answer| answer.expect("answers").expect("held"))
        .collect();
    assert!(
        terms.windows(2).all(|pair| pair[0] == pair[1]),
        "everyone sees the same term: {terms:?}"
    );
    let winners = candidates
        .iter()
        .filter(|candidate| **candidate == terms[0].holder)
        .count();
    assert_eq!(winners, 1);
}

async fn a_leader_renews_its_term_and_nobody_takes_it_before_it_expires(store: TestStore) {
    let first = ask(&store, "a", 0).await;
    assert_eq!((first.holder.as_str(), first.expires_at), ("a", at(15)));
    assert_eq!(
        ask(&store, "b", 5).await,
        first,
        "b cannot take a live term"
    );
    let renewed = ask(&store, "a", 10).await;
    assert_eq!(
        (renewed.elected_at, renewed.expires_at),
        (first.elected_at, at(25)),
        "a renewal keeps the term and moves its end"
    );
    assert_eq!(ask(&store, "b", 24).await.holder, "a");
    let taken = ask(&store, "b", 25).await;
    assert_eq!((taken.holder.as_str(), taken.elected_at), ("b", at(25)));
}

async fn a_leader_whose_term_was_replaced_learns_it_at_its_next_renewal(store: TestStore) {
    ask(&store, "a", 0).await;
    // a was away (a long pause, a lost connection) past its expiry; b took over.
    ask(&store, "b", 16).await;
    let seen_by_a = ask(&store, "a", 17).await;
    assert_eq!(seen_by_a.holder, "b", "a must step down");
}

async fn an_expired_term_is_not_renewed_but_elected_anew(store: TestStore) {
    let first = ask(&store, "a", 0).await;
    let again = ask(&store, "a", 20).await;
    assert_eq!(again.holder, "a");
    assert_ne!(
        again.elected_at, first.elected_at,
        "a term that ran out is over: the same holder starts a new one"
    );
}

async fn resigning_frees_the_lease_at_once_but_only_for_the_term_resigned(store: TestStore) {
    let first = ask(&store, "a", 0).await;
    store
        .resign_leadership(LEASE, "a", at(-100))
        .await
        .expect("a stale resignation is harmless");
    assert_eq!(
        store.leadership(LEASE).await.expect("reads"),
        Some(first.clone())
    );
    store
        .resign_leadership(LEASE, "a", first.elected_at)
        .await
        .expect("resigns");
    assert_eq!(store.leadership(LEASE).await.expect("reads"), None);
    assert_eq!(
        ask(&store, "b", 1).await.holder,
        "b",
        "no wait for the expiry"
    );
}

async fn start_stop_churn_never_shows_two_live_terms(store: TestStore) {
    // Candidates come and go every second for a minute; at every instant at most one
    // term is live, and a holder only ever loses a term by resigning or by its expiry.
    let mut held: Option<LeaderTerm> = None;
    for second in 0..60 {
        let candidate = format!("c{}", second % 3);
        let answer = ask(&store, &candidate, second).await;
        if let Some(previous) = &held
            && previous.expires_at > at(second)
            && previous.holder != answer.holder
        {
            panic!(
                "{} took {previous:?} while it was live at {second}",
                answer.holder
            );
        }
        if second % 7 == 6 && answer.holder == candidate {
            store
                .resign_leadership(LEASE, &answer.holder, answer.elected_at)
                .await
                .expect("resigns");
            held = None;
        } else {
            held = Some(answer);
        }
    }
}

store_suite!(
    competing_candidates_elect_exactly_one_leader,
    a_leader_renews_its_term_and_nobody_takes_it_before_it_expires,
    a_leader_whose_term_was_replaced_learns_it_at_its_next_renewal,
    an_expired_term_is_not_renewed_but_elected_anew,
    resigning_frees_the_lease_at_once_but_only_for_the_term_resigned,
    start_stop_churn_never_shows_two_live_terms,
);
