use std::collections::HashSet;

use forward::serial::Serials;
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn utc(text: &str) -> i64 {
    schemas::time::parse_utc_micros(text).unwrap()
}

async fn start(bootstrap: &str, topic: &str, stop: &CancellationToken) -> Serials {
    let (kafka, topic, stop) = (kafka(bootstrap), topic.to_owned(), stop.clone());
    tokio::task::spawn_blocking(move || Serials::start(&kafka, &topic, stop))
        .await
        .unwrap()
        .unwrap()
}

async fn take_ten(serials: &Serials, now_us: i64) -> Vec<u16> {
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(serials.take("national", now_us).await.unwrap());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_serial_survives_restarts_turns_at_beijing_midnight_and_never_repeats() {
    let cluster = mock_cluster();
    let topics = mock_topics(&cluster);
    let bootstrap = cluster.bootstrap_servers();
    let stop = CancellationToken::new();
    // 23:59:58 on 2 December in Beijing.
    let evening = utc("2026-12-02T15:59:58.000000Z");
    let first = start(&bootstrap, &topics.forward_state, &stop).await;
    assert_eq!(first.take("national", evening).await.unwrap(), 1);
    assert_eq!(first.take("national", evening).await.unwrap(), 2);
    assert_eq!(
        first.take("local", evening).await.unwrap(),
        1,
        "each upstream counts its own"
    );
    // A restart (a new process reading the topic) goes on from where the last one was.
    let restarted = start(&bootstrap, &topics.forward_state, &stop).await;
    assert_eq!(restarted.take("national", evening).await.unwrap(), 3);
    // Two seconds later it is the 3rd in Beijing (still the 2nd in UTC): 1 again.
    let after_midnight = evening + 2_000_000;
    assert_eq!(restarted.take("national", after_midnight).await.unwrap(), 1);
    let last = restarted.last("national").unwrap();
    assert_eq!((last.date.as_str(), last.serial), ("2026-12-03", 1));
    // Two replicas taking serials at the same time never get the same one.
    let (from_a, from_b) = tokio::join!(
        take_ten(&first, after_midnight),
        take_ten(&restarted, after_midnight)
    );
    let all: HashSet<u16> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(all.len(), 20, "a serial taken twice: {from_a:?} {from_b:?}");
    assert_eq!(all, (2..=21).collect::<HashSet<u16>>());
    stop.cancel();
}
