//! Properties, delivery and start positions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_messaging_eventhubs::StartLocation;

use super::*;
use crate::load::{messages_from_bytes, LoadOptions};

const T0: i64 = 1_700_000_000_000;

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_and_partition_properties_match_what_was_loaded() {
    // 10 messages over 4 partitions: 3, 3, 2, 2; partition 4 of 5 stays empty in the second hub.
    let msgs = bodies(10, 100);
    let d = start(config(4), msgs.clone()).await;
    let c = consumer_with_credential(&d).await;

    let hub = c.get_eventhub_properties().await.unwrap();
    assert_eq!(hub.name, HUB);
    assert_eq!(hub.partition_ids, vec!["0", "1", "2", "3"]);
    assert!(hub.created_on.is_some());

    for (p, count) in [(0usize, 3usize), (1, 3), (2, 2), (3, 2)] {
        let props = c.get_partition_properties(&p.to_string()).await.unwrap();
        let last_global = p + 4 * (count - 1);
        let last_offset: usize = (0..count - 1).map(|k| msgs[p + 4 * k].len()).sum();
        assert_eq!(props.id, p.to_string());
        assert_eq!(props.eventhub, HUB);
        assert_eq!(props.beginning_sequence_number, 0);
        assert_eq!(props.last_enqueued_sequence_number, count as i64 - 1);
        assert_eq!(props.last_enqueued_offset, last_offset.to_string());
        assert_eq!(
            ms(props.last_enqueued_time_utc.unwrap()),
            T0 + last_global as i64
        );
        assert!(!props.is_empty);
    }
    assert!(c.get_partition_properties("4").await.is_err());
    close(c).await;

    let d = start(config(5), bodies(4, 10)).await;
    let c = consumer(&d).await;
    let props = c.get_partition_properties("4").await.unwrap();
    assert!(props.is_empty);
    assert_eq!(props.last_enqueued_sequence_number, -1);
    assert_eq!(props.last_enqueued_offset, "-1");
    close(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_delivers_its_messages_from_earliest() {
    // The loader's output, a broken line included: it is served as is.
    let text =
        "{\"records\":[{\"id\":\"a\"}]}\nnot json at all\n{\"id\":\"r1\"}\n{\"id\":\"r2\"}\n\
                {\"records\":[{\"id\":\"b\"},{\"id\":\"c\"}]}\n{\"value\":[{\"id\":\"g\"}]}\n";
    let mut msgs = Vec::new();
    messages_from_bytes(text.as_bytes(), LoadOptions::default(), &mut msgs);
    msgs.extend(bodies(20, 3000));
    let total = msgs.len();
    let partitions = 3;
    let d = start(config(partitions), msgs.clone()).await;
    let c = consumer(&d).await;
    let mut seen = 0;
    for p in 0..partitions {
        let expected: Vec<&Vec<u8>> = msgs.iter().skip(p).step_by(partitions).collect();
        let r = receiver(&c, &p.to_string(), StartLocation::Earliest, false, None).await;
        let evs = events(&r, expected.len()).await;
        let mut offset = 0usize;
        for (i, (ev, body)) in evs.iter().zip(&expected).enumerate() {
            assert_eq!(ev.sequence_number(), Some(i as i64));
            assert_eq!(ev.offset().as_deref(), Some(offset.to_string().as_str()));
            assert_eq!(
                ms(ev.enqueued_time().unwrap()),
                T0 + (p + i * partitions) as i64
            );
            assert_eq!(ev.event_data().body(), Some(body.as_slice()));
            offset += body.len();
        }
        seen += evs.len();
        r.close().await.unwrap();
    }
    assert_eq!(seen, total);
    assert!(msgs.iter().any(|m| m == b"not json at all"));
    close(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_position_is_honoured() {
    let msgs = bodies(10, 50);
    let d = start(config(1), msgs.clone()).await;
    let c = consumer(&d).await;
    let offset_of = |i: usize| -> usize { msgs[..i].iter().map(Vec::len).sum() };
    let time_of = |i: usize| UNIX_EPOCH + Duration::from_millis((T0 + i as i64) as u64);

    let cases = [
        (StartLocation::Earliest, false, 0),
        (StartLocation::SequenceNumber(3), false, 4),
        (StartLocation::SequenceNumber(3), true, 3),
        (StartLocation::Offset(offset_of(5).to_string()), false, 6),
        (StartLocation::Offset(offset_of(5).to_string()), true, 5),
        (StartLocation::EnqueuedTime(time_of(7)), false, 8),
        (StartLocation::EnqueuedTime(time_of(7)), true, 7),
        (StartLocation::EnqueuedTime(UNIX_EPOCH), false, 0),
    ];
    for (location, inclusive, first) in cases {
        // One client per case: a receiver is cached per partition in the client.
        let c = consumer(&d).await;
        let r = receiver(&c, "0", location.clone(), inclusive, None).await;
        let evs = events(&r, 10 - first).await;
        assert_eq!(
            seqs(&evs),
            (first as i64..10).collect::<Vec<_>>(),
            "{location:?} inclusive={inclusive}"
        );
        close(c).await;
    }

    // A sequence number past the end is an error, as in Event Hubs.
    let r = receiver(&c, "0", StartLocation::SequenceNumber(50), false, None).await;
    let got = take(&r, 1).await;
    assert!(got[0].is_err(), "{got:?}");
    close(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_gets_only_events_published_after_attach() {
    let mut cfg = config(1);
    cfg.publish_rate = Some(400.0);
    let d = start(cfg, bodies(4000, 200)).await;
    let c = consumer(&d).await;
    // Wait until something is published.
    let before = loop {
        let p = c.get_partition_properties("0").await.unwrap();
        if !p.is_empty {
            break p;
        }
        tokio::task::yield_now().await;
    };
    let r = receiver(&c, "0", StartLocation::Latest, false, None).await;
    let evs = events(&r, 20).await;
    let s = seqs(&evs);
    assert!(
        s[0] > before.last_enqueued_sequence_number,
        "{s:?} after {}",
        before.last_enqueued_sequence_number
    );
    assert_eq!(s, (s[0]..s[0] + 20).collect::<Vec<_>>());
    // Enqueued when published: a moment ago, not at load.
    let age = SystemTime::now()
        .duration_since(evs[19].enqueued_time().unwrap())
        .unwrap_or_default();
    assert!(age < Duration::from_secs(5), "{age:?}");
    close(c).await;
}

/// Management round trips back to back: none may hang (see `DISPOSITION_DELAY`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_calls_back_to_back_never_hang() {
    let d = start(config(4), bodies(10, 100)).await;
    let c = consumer(&d).await;
    for i in 0..60 {
        let p = (i % 4).to_string();
        let props = tokio::time::timeout(WAIT, c.get_partition_properties(&p))
            .await
            .unwrap_or_else(|_| panic!("management call {i} hung"))
            .unwrap();
        assert_eq!(props.id, p);
    }
    close(c).await;
}
