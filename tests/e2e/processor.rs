//! Simulator faults → ingest → Tansu → processor → alerts, and a processor restart mid-stream.
//! The fleet is mixed: odd-numbered terminals speak the 2025 edition (SM2-signed), the others
//! 2016, over every cipher; every rule must fire for both.
//!
//! Simulated time runs ten times faster than wall-clock time, so every window, lateness and
//! quiet period (event time) passes in a tenth of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use processor::runner::RunConfig;
use processor::{Processor, ProcessorConfig};
use schemas::KeyStore;
use schemas::message::{KafkaSettings, Topics};
use schemas::realtime::{InfoItem, Realtime, WptSnapshot};
use serde_json::Value;
use simulator::{self, Fault, SimConfig};
use testkit::{Record, Scratch, Tail, Tansu, create_topic_names, create_topics, metric};

const RATE_HZ: f64 = 10.0;
const SECOND: i64 = 1_000_000;

fn processor_config(bootstrap: &str, topics: &Topics, group: &str) -> RunConfig {
    RunConfig {
        kafka: KafkaSettings {
            brokers: bootstrap.to_owned(),
            properties: Default::default(),
        },
        topics: topics.clone(),
        processor: ProcessorConfig {
            group_id: group.to_owned(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            // Ten simulated seconds a wall-clock second: 20 s of lateness is 2 s of wall time.
            allowed_lateness: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(3),
            batch_max_wait: Duration::from_millis(50),
            delivery_timeout: Duration::from_secs(10),
            ..ProcessorConfig::default()
        },
    }
}

/// Ingest on `tansu` with a key file of `n` terminals (every cipher in turn); returns the
/// server and the fleet.
async fn ingest_with_fleet(
    tansu: &Tansu,
    topics: &Topics,
    scratch: &Scratch,
    n: usize,
) -> (
    ingest::Ingest,
    Vec<(schemas::Vin, std::sync::Arc<schemas::TerminalKey>)>,
) {
    let key_path = scratch.0.join("keys.toml");
    std::fs::write(&key_path, simulator::generate_key_file(n, None)).unwrap();
    let config = ingest::IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        keys: key_path.clone(),
        ..ingest::IngestConfig::default()
    };
    let kafka = KafkaSettings {
        brokers: tansu.bootstrap.clone(),
        properties: Default::default(),
    };
    let server = ingest::Ingest::start(&kafka, topics.clone(), config)
        .await
        .unwrap();
    let keys = KeyStore::load(&key_path).unwrap();
    (server, simulator::terminals_of(&keys, n))
}

/// An alert event as read back: (type suffix, rule, VIN, window end µs, data).
#[derive(Debug, Clone)]
struct Alert {
    kind: String,
    id: String,
    rule: String,
    vin: String,
    window_end_us: i64,
    data: Value,
}

fn alerts_of(records: &[Record]) -> Vec<Alert> {
    records
        .iter()
        .map(|r| {
            let event = processor::alerts::AlertEvent::from_bytes(&r.value).unwrap_or_else(|| {
                panic!("not an alert event: {}", String::from_utf8_lossy(&r.value))
            });
            let doc: Value = serde_json::from_slice(&r.value).unwrap();
            assert_eq!(doc["specversion"], "1.0");
            assert_eq!(
                r.key.as_deref(),
                Some(event.vin.as_bytes()),
                "alerts are keyed by VIN"
            );
            Alert {
                kind: event.kind.as_str().to_owned(),
                id: event.id,
                rule: event.rule,
                vin: event.vin,
                window_end_us: event.window_end_us,
                data: doc["data"].clone(),
            }
        })
        .collect()
}

fn wpt(report: &Realtime) -> Option<&WptSnapshot> {
    report.items.iter().find_map(|item| match item {
        InfoItem::Wpt(wpt, _) => Some(wpt.as_ref()),
        _ => None,
    })
}

fn alarm_flags(report: &Realtime) -> i64 {
    report
        .items
        .iter()
        .find_map(|item| match item {
            InfoItem::Alarms(a) => a.general_flags.valid(),
            InfoItem::Alarm2025(a) => a.general_flags.valid(),
            _ => None,
        })
        .unwrap_or(0)
}

/// The spread of a 2025 report's pack, in mV.
fn cell_spread_mv(report: &Realtime) -> f64 {
    report
        .items
        .iter()
        .find_map(|item| match item {
            InfoItem::CellVoltages2025(packs) => packs.entries.first().map(|p| {
                let cells: Vec<f64> = p.cells_v.iter().filter_map(|v| v.valid()).collect();
                let max = cells.iter().copied().fold(f64::MIN, f64::max);
                let min = cells.iter().copied().fold(f64::MAX, f64::min);
                (max - min) * 1000.0
            }),
            _ => None,
        })
        .unwrap_or(0.0)
}

/// One injected fault and what must come of it.
struct Expect {
    fault: &'static str,
    rule: &'static str,
    /// Windows after the first offending reading within which the alert must be raised (1 for
    /// rules that fire on any reading, 2 for rules on a window average), plus 1 s.
    windows: i64,
    /// The reading that starts the condition; `None`: the fault's start (absence faults).
    offending: Option<fn(&Realtime) -> bool>,
}

fn charging(r: &Realtime) -> bool {
    wpt(r).is_some_and(|w| w.ground_state.valid() == Some(3))
}

fn f(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}

fn i(x: Option<i64>) -> i64 {
    x.unwrap_or(-1)
}

const EXPECTED: [Expect; 11] = [
    Expect {
        fault: "tx-coil-overheat:0@20s+100s",
        rule: "tx_coil_overheat",
        windows: 1,
        offending: Some(|r| wpt(r).is_some_and(|w| i(w.tx_coil_temp_c.valid()) > 75)),
    },
    Expect {
        fault: "fod:1@30s+40s",
        rule: "foreign_object",
        windows: 1,
        offending: Some(|r| wpt(r).is_some_and(|w| i(w.fod.valid()) == 1)),
    },
    Expect {
        // The battery heats slowly (300 s time constant): an 11.1 kW terminal, early and long.
        fault: "battery-overtemp:2@10s+150s",
        rule: "battery_overtemp",
        windows: 1,
        offending: Some(|r| wpt(r).is_some_and(|w| i(w.batt_max_temp_c.valid()) > 45)),
    },
    Expect {
        fault: "misalignment:3@30s+60s",
        rule: "misalignment",
        windows: 2,
        offending: Some(|r| {
            charging(r) && wpt(r).is_some_and(|w| i(w.offset_x_mm.valid()).abs() > 75)
        }),
    },
    Expect {
        fault: "efficiency-drop:4@30s+40s",
        rule: "efficiency_low",
        windows: 2,
        offending: Some(|r| {
            charging(r) && wpt(r).is_some_and(|w| f(w.efficiency_pct.valid()) < 85.0)
        }),
    },
    Expect {
        fault: "inverter-freq-drift:5@30s+40s",
        rule: "inverter_freq_out_of_band",
        windows: 1,
        offending: Some(|r| wpt(r).is_some_and(|w| f(w.inverter_freq_khz.valid()) > 90.0)),
    },
    Expect {
        fault: "grid-overvoltage:6@30s+40s",
        rule: "grid_voltage_out_of_range",
        windows: 1,
        offending: Some(|r| wpt(r).is_some_and(|w| f(w.ac_voltage_v.valid()) > 253.0)),
    },
    Expect {
        fault: "alarm:7@30s+40s",
        rule: "gbt32960_alarm",
        windows: 1,
        offending: Some(|r| alarm_flags(r) != 0),
    },
    Expect {
        // Silent from 60 s: the rule fires once the silence passes 30 s.
        fault: "comm-loss:8@60s+60s",
        rule: "comm_loss",
        windows: 4,
        offending: None,
    },
    Expect {
        // Terminal 9 speaks 2025: every cell of its pack in each report.
        fault: "cell-imbalance:9@30s+40s",
        rule: "cell_voltage_spread",
        windows: 1,
        offending: Some(|r| cell_spread_mv(r) > 100.0),
    },
    Expect {
        fault: "living-object:10@30s+40s",
        rule: "living_object",
        windows: 1,
        offending: Some(|r| wpt(r).is_some_and(|w| i(w.lop.valid()) == 1)),
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_raise_their_rules_and_clear_after_the_fault() {
    let tansu = Tansu::start();
    let topics = create_topics(&tansu.bootstrap).await;
    let scratch = Scratch::new();
    let healthy = 2;
    let (server, fleet) =
        ingest_with_fleet(&tansu, &topics, &scratch, EXPECTED.len() + healthy).await;
    let processor = Processor::start(processor_config(
        &tansu.bootstrap,
        &topics,
        &testkit::unique("proc"),
    ))
    .await
    .unwrap();

    let mut sim = SimConfig::new(server.listen_addr.to_string(), fleet.clone());
    sim.rate_hz = RATE_HZ;
    sim.duration_s = 320;
    sim.keep_truth = true;
    sim.editions = simulator::Editions::Mixed;
    sim.faults = EXPECTED
        .iter()
        .map(|e| e.fault.parse::<Fault>().unwrap())
        .collect();
    let start_us = sim.start_us;
    let report = simulator::run(sim, |_| {}).await;
    assert_eq!(report.failed, 0, "{}", report.summary());

    let vin = |index: usize| fleet[index].0.to_string();
    let mut tail = Tail::new(&tansu.bootstrap, &topics.alerts);
    let all_cleared = |records: &[Record]| {
        let alerts = alerts_of(records);
        EXPECTED.iter().enumerate().all(|(index, e)| {
            alerts
                .iter()
                .any(|a| a.kind == "cleared" && a.rule == e.rule && a.vin == vin(index))
        })
    };
    let done = tail.until(Duration::from_secs(120), all_cleared);
    let alerts = alerts_of(&tail.records);
    let seen: Vec<(String, String, String)> = alerts
        .iter()
        .map(|a| (a.kind.clone(), a.rule.clone(), a.vin.clone()))
        .collect();
    assert!(
        done,
        "not every fault raised and cleared its rule: {seen:#?}"
    );

    for (index, expect) in EXPECTED.iter().enumerate() {
        let fault: Fault = expect.fault.parse().unwrap();
        let fault_start = start_us + fault.start.as_micros() as i64;
        let fault_end = fault_start + fault.duration.unwrap().as_micros() as i64;
        let first_offending = match expect.offending {
            Some(offending) => report
                .truth
                .iter()
                .filter(|(v, r)| v.to_string() == vin(index) && offending(r))
                .map(|(_, r)| r.time.utc_micros())
                .min()
                .unwrap_or_else(|| {
                    panic!("{}: the simulator never showed the fault", expect.fault)
                }),
            None => fault_start,
        };
        let raised = alerts
            .iter()
            .find(|a| a.kind == "raised" && a.rule == expect.rule && a.vin == vin(index))
            .unwrap_or_else(|| panic!("{}: no {} raised", expect.fault, expect.rule));
        let limit = first_offending + expect.windows * 10 * SECOND + SECOND;
        assert!(
            raised.window_end_us > fault_start && raised.window_end_us <= limit,
            "{}: raised in the window ending {} s into the session, the condition began at {} s",
            expect.fault,
            (raised.window_end_us - start_us) / SECOND,
            (first_offending - start_us) / SECOND,
        );
        let cleared = alerts
            .iter()
            .find(|a| a.kind == "cleared" && a.rule == expect.rule && a.vin == vin(index))
            .unwrap();
        assert!(
            cleared.window_end_us > fault_end,
            "{}: cleared before the fault ended",
            expect.fault
        );
        assert_eq!(
            cleared.data["raised_window_start"],
            raised.data["raised_window_start"]
        );
    }
    let realign = alerts.iter().any(|a| {
        a.rule == "diagnosis"
            && a.vin == vin(3)
            && a.data["entity"]["diagnosis"] == "realign vehicle"
    });
    assert!(
        realign,
        "misalignment with low efficiency is diagnosed as 'realign vehicle'"
    );
    for index in EXPECTED.len()..EXPECTED.len() + healthy {
        let noise: Vec<&Alert> = alerts.iter().filter(|a| a.vin == vin(index)).collect();
        assert!(
            noise.is_empty(),
            "healthy terminal {index} alerted: {noise:#?}"
        );
    }
    assert_eq!(
        metric(processor.admin_addr, "processor_records_late_total", "").await,
        0.0
    );
    assert_eq!(
        metric(processor.admin_addr, "processor_rules_loaded", "").await,
        processor::rules::builtin().len() as f64
    );

    processor.role.shutdown();
    processor.role.wait().await.unwrap();
    server.role.shutdown();
    server.role.wait().await.unwrap();
}

/// The ids of alert events, with what each says.
fn by_id(alerts: &[Alert]) -> BTreeMap<String, (String, String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a.id.clone(),
                (a.kind.clone(), a.rule.clone(), a.vin.clone()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_processor_misses_no_alert_and_repeats_carry_the_same_ids() {
    // `RUST_LOG=processor=info` shows both instances at work when this fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tansu = Tansu::start();
    let topics = create_topics(&tansu.bootstrap).await;
    // The reference instance runs uninterrupted in its own group, to its own alerts topic.
    let reference_topics = Topics {
        alerts: testkit::unique("alerts-reference"),
        ..topics.clone()
    };
    create_topic_names(&tansu.bootstrap, &[reference_topics.alerts.as_str()]).await;
    let scratch = Scratch::new();
    let (server, fleet) = ingest_with_fleet(&tansu, &topics, &scratch, 8).await;
    let group = testkit::unique("proc");
    let reference = Processor::start(processor_config(
        &tansu.bootstrap,
        &reference_topics,
        &testkit::unique("ref"),
    ))
    .await
    .unwrap();
    let first = Processor::start(processor_config(&tansu.bootstrap, &topics, &group))
        .await
        .unwrap();

    let mut sim = SimConfig::new(server.listen_addr.to_string(), fleet);
    sim.rate_hz = RATE_HZ;
    sim.duration_s = 200;
    sim.faults = [
        "tx-coil-overheat:0@20s+60s",
        "fod:1@30s+30s",
        "misalignment:2@40s+40s",
        "efficiency-drop:3@50s+30s",
        "alarm:4@20s+60s",
        "grid-undervoltage:5@90s+30s",
        "living-object:6@120s+20s",
    ]
    .iter()
    .map(|f| f.parse().unwrap())
    .collect();
    let fleet_run = tokio::spawn(simulator::run(sim, |_| {}));

    // Stop the first instance mid-stream, once it has raised a few alerts.
    let mut first_alerts = Tail::new(&tansu.bootstrap, &topics.alerts);
    assert!(
        first_alerts.until(Duration::from_secs(60), |r| r.len() >= 3),
        "the first instance raised nothing"
    );
    first.role.shutdown();
    first.role.wait().await.unwrap();
    let stopped_after = first_alerts.records.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = Processor::start(processor_config(&tansu.bootstrap, &topics, &group))
        .await
        .unwrap();
    let report = fleet_run.await.unwrap();
    assert_eq!(report.failed, 0, "{}", report.summary());

    // Wait until the reference has cleared everything it raised and the pair has caught up.
    let mut reference_alerts = Tail::new(&tansu.bootstrap, &reference_topics.alerts);
    let settled = |records: &[Record]| {
        let alerts = alerts_of(records);
        let raised = alerts.iter().filter(|a| a.kind == "raised").count();
        let cleared = alerts.iter().filter(|a| a.kind == "cleared").count();
        raised >= 7 && raised == cleared
    };
    assert!(
        reference_alerts.until(Duration::from_secs(120), settled),
        "reference did not settle"
    );
    reference_alerts.drain(Duration::from_secs(5));
    let expected = by_id(&alerts_of(&reference_alerts.records));
    let mut pair = Tail::new(&tansu.bootstrap, &topics.alerts);
    let caught_up = |records: &[Record]| {
        let ids: BTreeSet<String> = alerts_of(records).into_iter().map(|a| a.id).collect();
        expected.keys().all(|id| ids.contains(id))
    };
    pair.until(Duration::from_secs(90), caught_up);
    pair.drain(Duration::from_secs(5));
    let produced = by_id(&alerts_of(&pair.records));
    assert!(
        stopped_after < pair.records.len(),
        "the second instance produced nothing"
    );

    assert_eq!(
        metric(second.admin_addr, "processor_records_late_total", "").await,
        0.0
    );
    assert_eq!(
        metric(reference.admin_addr, "processor_records_late_total", "").await,
        0.0
    );
    let story = |records: &[Record], rule: &str, vin: &str| -> Vec<(String, String, i64)> {
        alerts_of(records)
            .into_iter()
            .filter(|a| a.rule == rule && a.vin == vin)
            .map(|a| {
                (
                    a.kind,
                    a.data["raised_window_start"].to_string(),
                    a.window_end_us / SECOND,
                )
            })
            .collect()
    };
    let explain = |pairs: &[(&String, &(String, String, String))]| {
        for (_, (_, rule, vin)) in pairs {
            eprintln!(
                "{rule} {vin}: reference {:?}",
                story(&reference_alerts.records, rule, vin)
            );
            eprintln!(
                "{rule} {vin}: restarted pair {:?}",
                story(&pair.records, rule, vin)
            );
        }
    };
    let missed: Vec<_> = expected
        .iter()
        .filter(|(id, _)| !produced.contains_key(*id))
        .collect();
    explain(&missed);
    assert!(
        missed.is_empty(),
        "alerts missed across the restart: {missed:#?}"
    );
    let extra: Vec<_> = produced
        .iter()
        .filter(|(id, _)| !expected.contains_key(*id))
        .collect();
    explain(&extra);
    eprintln!("(the first instance stopped after {stopped_after} alerts)");
    assert!(
        extra.is_empty(),
        "alerts the uninterrupted run never produced: {extra:#?}"
    );
    for (id, what) in &produced {
        assert_eq!(Some(what), expected.get(id), "alert {id} differs");
    }

    for processor in [second, reference] {
        processor.role.shutdown();
        processor.role.wait().await.unwrap();
    }
    server.role.shutdown();
    server.role.wait().await.unwrap();
}
