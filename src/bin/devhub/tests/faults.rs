//! Forced detaches, epochs, refused tokens and clients that misbehave.

use azure_messaging_eventhubs::error::ErrorKind;
use azure_messaging_eventhubs::StartLocation;
use tokio::io::AsyncWriteExt;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_every_k_replays_from_the_original_filter_and_never_hangs() {
    let mut cfg = config(1);
    cfg.detach_every = 4;
    let d = start(cfg, bodies(6, 100)).await;
    let c = consumer(&d).await;
    let r = receiver(&c, "0", StartLocation::Earliest, false, None).await;
    let evs = events(&r, 14).await;
    // The client re-attaches with its original filter: the sequence numbers restart.
    assert_eq!(seqs(&evs), vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
    // devhub may be force-detaching the link at this very moment: the close can report that
    // collision, but must not hang.
    let _ = tokio::time::timeout(WAIT, r.close())
        .await
        .expect("receiver close hung");
    close(c).await;

    // From a sequence number, the replay restarts there.
    let mut cfg = config(1);
    cfg.detach_every = 3;
    let d = start(cfg, bodies(20, 100)).await;
    let c = consumer(&d).await;
    let r = receiver(&c, "0", StartLocation::SequenceNumber(10), true, None).await;
    assert_eq!(seqs(&events(&r, 7).await), vec![10, 11, 12, 10, 11, 12, 10]);
    close(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_or_equal_epoch_steals_and_a_lower_one_is_refused() {
    let d = start(config(2), bodies(8, 100)).await;
    let a = consumer(&d).await;
    let ra = receiver(&a, "0", StartLocation::Earliest, false, Some(1)).await;
    assert_eq!(seqs(&events(&ra, 4).await), vec![0, 1, 2, 3]);

    // B with the same epoch steals partition 0 from A.
    let b = consumer(&d).await;
    let rb = receiver(&b, "0", StartLocation::Earliest, false, Some(1)).await;
    assert_eq!(seqs(&events(&rb, 4).await), vec![0, 1, 2, 3]);
    let got = take(&ra, 1).await;
    match &got[0] {
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::ConsumerDisconnected(_)),
            "{e:?}"
        ),
        Ok(ev) => panic!("A still receives: {:?}", ev.sequence_number()),
    }

    // C with a lower epoch is refused; without an epoch too.
    let c = consumer(&d).await;
    let rc = receiver(&c, "0", StartLocation::Earliest, false, Some(0)).await;
    let got = take(&rc, 1).await;
    assert!(
        matches!(&got[0], Err(e) if matches!(e.kind, ErrorKind::ConsumerDisconnected(_))),
        "{got:?}"
    );
    let c2 = consumer(&d).await;
    let rc2 = receiver(&c2, "0", StartLocation::Earliest, false, None).await;
    assert!(take(&rc2, 1).await[0].is_err());

    // Other partitions and consumer groups are independent.
    let rc3 = receiver(&c2, "1", StartLocation::Earliest, false, None).await;
    assert_eq!(seqs(&events(&rc3, 4).await), vec![0, 1, 2, 3]);
    let o = consumer_with(&d, CONNECTION_STRING, Some("other"))
        .await
        .unwrap();
    let ro = receiver(&o, "0", StartLocation::Earliest, false, Some(0)).await;
    assert_eq!(seqs(&events(&ro, 4).await), vec![0, 1, 2, 3]);

    // B still owns partition 0.
    drop(ra);
    drop(rc);
    drop(rc2);
    for client in [a, c, c2] {
        close_after_errors(client).await;
    }
    close(o).await;
    drop(rb);
    close(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_surface_as_errors_in_the_client() {
    let mut cfg = config(2);
    cfg.auth = Auth::RejectAll;
    let d = start(cfg, bodies(4, 100)).await;
    let c = consumer(&d).await;
    let err = tokio::time::timeout(WAIT, c.get_eventhub_properties())
        .await
        .expect("properties hung")
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(chain.contains("401"), "{chain}");
    let r = receiver(&c, "0", StartLocation::Earliest, false, None).await;
    assert!(take(&r, 1).await[0].is_err());
    close_after_errors(c).await;

    // With --sas-key, only tokens signed with that key pass.
    let mut cfg = config(1);
    cfg.auth = Auth::SasKey {
        name: "k".into(),
        key: "c2VjcmV0".into(),
    };
    let d = start(cfg, bodies(4, 100)).await;
    let good = consumer(&d).await;
    assert_eq!(
        good.get_eventhub_properties().await.unwrap().partition_ids,
        vec!["0"]
    );
    let r = receiver(&good, "0", StartLocation::Earliest, false, None).await;
    assert_eq!(seqs(&events(&r, 4).await), vec![0, 1, 2, 3]);
    close(good).await;
    let wrong = CONNECTION_STRING.replace("c2VjcmV0", "d3Jvbmc=");
    let bad = consumer_with(&d, &wrong, None).await.unwrap();
    assert!(bad.get_eventhub_properties().await.is_err());
    close_after_errors(bad).await;
    let jwt = consumer_with_credential(&d).await;
    assert!(jwt.get_eventhub_properties().await.is_err());
    close_after_errors(jwt).await;
}

/// An error and its sources, one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_entities_are_errors() {
    let d = start(config(2), bodies(4, 100)).await;
    let c = consumer_with(&d, CONNECTION_STRING, Some("nope"))
        .await
        .unwrap();
    let r = receiver(&c, "0", StartLocation::Earliest, false, None).await;
    assert!(take(&r, 1).await[0].is_err());
    let r = receiver(&c, "7", StartLocation::Earliest, false, None).await;
    assert!(take(&r, 1).await[0].is_err());
    close_after_errors(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_do_not_hurt_the_server() {
    let d = start(config(1), bodies(3, 100)).await;
    // Garbage, a bare protocol header, a half SASL exchange, and a client that vanishes
    // mid-stream.
    for bytes in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"AMQP\x00\x01\x00\x00",
        b"AMQP\x03\x01\x00\x00\x00\x00\x00\x10\x02\x01\x00\x00\x00\x53\x41\xc0\x03",
        b"",
    ] {
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        let _ = s.write_all(bytes).await;
        drop(s);
    }
    {
        let c = consumer(&d).await;
        let r = receiver(&c, "0", StartLocation::Earliest, false, None).await;
        assert_eq!(seqs(&events(&r, 1).await), vec![0]);
        // Dropped without closing anything.
    }
    let c = consumer(&d).await;
    let r = receiver(&c, "0", StartLocation::Earliest, false, None).await;
    assert_eq!(seqs(&events(&r, 3).await), vec![0, 1, 2]);
    close(c).await;
}
