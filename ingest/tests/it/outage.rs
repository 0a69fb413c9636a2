//! A broker outage: nothing acknowledged is lost, and ingest recovers by itself.

use std::time::Duration;

use schemas::Cipher;
use simulator::{self, SimConfig};

use crate::support::{MockSetup, assert_acknowledged_reports_stored, http_get, metric, mock_setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_no_acknowledged_report() {
    let MockSetup {
        cluster,
        topics,
        keys,
        server,
        scratch: _scratch,
    } = mock_setup(2, Cipher::DesCbc, |c| {
        c.delivery_timeout = Duration::from_secs(2)
    })
    .await;
    let bootstrap = cluster.bootstrap_servers();
    let mut sim = SimConfig::new(
        server.listen_addr.to_string(),
        simulator::terminals_of(&keys, 2),
    );
    sim.rate_hz = 10.0;
    sim.duration_s = 80;
    sim.reply_timeout = Duration::from_secs(3);
    sim.max_reissues = 20;
    sim.keep_truth = true;
    let fleet = tokio::spawn(simulator::run(sim, |_| {}));

    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, _) = http_get(server.admin_addr, "/readyz").await;
    assert_eq!(status, 503, "not ready while the broker is down");
    cluster.broker_up(1).unwrap();

    let report = fleet.await.unwrap();
    assert_eq!(report.failed, 0, "{}", report.summary());
    assert!(
        report.error_replies + report.reissued > 0,
        "the outage was felt: {}",
        report.summary()
    );
    assert!(
        metric(
            server.admin_addr,
            "ingest_deliveries_failed_total",
            "telemetry"
        )
        .await
            > 0.0
    );
    assert_eq!(report.acknowledged, 160, "{}", report.summary());

    // Every acknowledged report is on the topic (some more than once: reissues of reports whose
    // first copy did land).
    assert_acknowledged_reports_stored(&bootstrap, &topics.telemetry, &report);
    let (status, _) = http_get(server.admin_addr, "/readyz").await;
    assert_eq!(status, 200, "ready again once the broker is back");
    server.role.shutdown();
    server.role.wait().await.unwrap();
}
