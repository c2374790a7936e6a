//! The alerts' tables on both backends (see [`crate::support::store_suite`]): a trouble is
//! opened once and closed once (what makes `late` and `recovered` go out once across
//! instances), the baseline a dead man's switch counts from, and deliveries recorded,
//! updated, paged and pruned.

use batchboard::job::JobSettings;
use batchboard::store::{DeliveryStatus, NewDelivery, RunStatus, Trigger, Trouble};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::{TestStore, ended_run, store_suite};

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + Duration::minutes(minutes)
}

async fn a_trouble_opens_once_and_closes_once(store: TestStore) {
    let alerts = store.alerts();
    assert!(
        alerts
            .open_trouble("export", Trouble::Late, at(0))
            .await
            .expect("write")
    );
    assert!(
        !alerts
            .open_trouble("export", Trouble::Late, at(1))
            .await
            .expect("write"),
        "a second instance loses"
    );
    assert!(
        alerts
            .open_trouble("export", Trouble::Dead, at(2))
            .await
            .expect("write")
    );
    let mut troubles = alerts.jobs_in_trouble().await.expect("read");
    troubles.sort_by_key(|(_, trouble)| trouble.as_str());
    assert_eq!(
        troubles,
        [
            ("export".to_owned(), Trouble::Dead),
            ("export".to_owned(), Trouble::Late)
        ]
    );
    assert!(alerts.close_troubles("export").await.expect("write"));
    assert!(
        !alerts.close_troubles("export").await.expect("write"),
        "recovered once"
    );
    assert!(alerts.jobs_in_trouble().await.expect("read").is_empty());
}

async fn a_dead_mans_switch_counts_from_the_last_success_or_the_jobs_start(store: TestStore) {
    let settings = ["fresh", "proven"].map(|name| JobSettings {
        name: name.into(),
        handler: "demo".into(),
        every: Some("1h".into()),
        ..JobSettings::default()
    });
    let records = store.sync_jobs(&settings, at(0)).await.expect("sync");
    let proven = records
        .iter()
        .find(|r| r.name == "proven")
        .expect("saved")
        .id;
    for (minutes, status) in [
        (10, RunStatus::Succeeded),
        (20, RunStatus::Succeeded),
        (30, RunStatus::Failed),
    ] {
        ended_run(
            &store,
            proven,
            Trigger::Schedule,
            at(minutes),
            status,
            at(minutes + 1),
        )
        .await;
    }
    let mut baselines = store
        .alerts()
        .success_baselines(&["fresh".into(), "proven".into(), "unknown".into()])
        .await
        .expect("read");
    baselines.sort();
    assert_eq!(
        baselines,
        [("fresh".to_owned(), at(0)), ("proven".to_owned(), at(21))]
    );
}

async fn deliveries_are_recorded_updated_paged_and_pruned(store: TestStore) {
    let alerts = store.alerts();
    let mut ids = Vec::new();
    for minutes in 0..3 {
        let delivery = NewDelivery {
            event: "dead".into(),
            target: "ops".into(),
            job: Some("export".into()),
            run_id: Some(7),
            payload: "{\"event\":\"dead\"}".into(),
            created_at: at(minutes),
        };
        ids.push(alerts.record_delivery(&delivery).await.expect("recorded"));
    }
    alerts
        .update_delivery(
            ids[2],
            DeliveryStatus::Failed,
            6,
            Some("the receiver answered 500"),
            at(5),
        )
        .await
        .expect("updated");
    let newest = alerts.deliveries(None, 2).await.expect("read");
    assert_eq!(
        newest.iter().map(|d| d.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    assert_eq!(newest[0].status, DeliveryStatus::Failed);
    assert_eq!(newest[0].attempts, 6);
    assert_eq!(
        newest[0].last_error.as_deref(),
        Some("the receiver answered 500")
    );
    assert_eq!(newest[0].updated_at, at(5));
    assert_eq!(newest[1].status, DeliveryStatus::Pending);
    let older = alerts.deliveries(Some(ids[1]), 10).await.expect("read");
    assert_eq!(older.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[0]]);
    assert_eq!(alerts.prune_deliveries(at(2), 1).await.expect("pruned"), 1);
    assert_eq!(alerts.prune_deliveries(at(2), 1).await.expect("pruned"), 1);
    assert_eq!(alerts.prune_deliveries(at(2), 1).await.expect("pruned"), 0);
    assert_eq!(alerts.deliveries(None, 10).await.expect("read").len(), 1);
}

async fn stalled_deliveries_are_taken_over_once_and_finished_ones_never(store: TestStore) {
    let alerts = store.alerts();
    let record = |minute: i64, event: &str| NewDelivery {
        event: event.into(),
        target: "ops".into(),
        job: Some("export".into()),
        run_id: None,
        payload: format!("{{\"event\":\"{event}\"}}"),
        created_at: at(minute),
    };
    let stalled = alerts
        .record_delivery(&record(0, "dead"))
        .await
        .expect("write");
    alerts
        .update_delivery(stalled, DeliveryStatus::Pending, 2, Some("500"), at(1))
        .await
        .expect("write");
    let delivered = alerts
        .record_delivery(&record(0, "late"))
        .await
        .expect("write");
    alerts
        .update_delivery(delivered, DeliveryStatus::Delivered, 1, None, at(1))
        .await
        .expect("write");
    let recent = alerts
        .record_delivery(&record(9, "failed"))
        .await
        .expect("write");

    let adopted = alerts
        .adopt_stalled_deliveries(at(5), at(10), 100)
        .await
        .expect("adopt");
    assert_eq!(
        adopted.len(),
        1,
        "only the pending one untouched since before 5"
    );
    assert_eq!(adopted[0].id, stalled);
    assert_eq!(adopted[0].target, "ops");
    assert_eq!(adopted[0].event, "dead");
    assert_eq!(adopted[0].attempts, 2);
    assert_eq!(adopted[0].payload, "{\"event\":\"dead\"}");
    assert!(
        alerts
            .adopt_stalled_deliveries(at(5), at(10), 100)
            .await
            .expect("adopt")
            .is_empty(),
        "a second instance asking finds it taken"
    );
    let later = alerts
        .adopt_stalled_deliveries(at(10) + Duration::seconds(1), at(11), 1)
        .await
        .expect("adopt");
    assert_eq!(
        later.iter().map(|d| d.id).collect::<Vec<_>>(),
        [stalled],
        "the oldest first, up to the limit; {recent} waits"
    );
}

store_suite!(
    a_trouble_opens_once_and_closes_once,
    a_dead_mans_switch_counts_from_the_last_success_or_the_jobs_start,
    deliveries_are_recorded_updated_paged_and_pruned,
    stalled_deliveries_are_taken_over_once_and_finished_ones_never,
);
