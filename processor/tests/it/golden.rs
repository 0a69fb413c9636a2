//! One golden test per built-in rule: `tests/golden/<rule>.jsonl` (a script, see `support`)
//! through the engine with only that rule must give exactly the CloudEvents of
//! `tests/golden/<rule>.expected.jsonl`, and show the whole lifecycle (a raise and a clear).
//! `CHARGEWATCH_BLESS=1` rewrites the expected files (review the diff before committing).

use std::path::PathBuf;

use processor::alerts::AlertKind;
use processor::rules::Overrides;

use crate::support::{self, Script};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

async fn check(id: &str) {
    let dir = golden_dir();
    let input = std::fs::read_to_string(dir.join(format!("{id}.jsonl")))
        .unwrap_or_else(|e| panic!("rule {id} has no golden input: {e}"));
    let script = Script::parse(&input);
    let rules = support::builtin(&[id], &Overrides::new()).await;
    assert_eq!(rules.len(), 1, "built-in rule {id}");
    let mut engine = support::engine(rules);
    let events = support::run(&mut engine, &script).await;
    assert!(
        events.iter().any(|e| e.kind == AlertKind::Raised)
            && events.iter().any(|e| e.kind == AlertKind::Cleared),
        "golden input of {id} must raise and clear: {:?}",
        support::brief(&events)
    );
    let actual: String = events
        .iter()
        .map(|e| format!("{}\n", e.to_cloudevent()))
        .collect();
    let expected_path = dir.join(format!("{id}.expected.jsonl"));
    if std::env::var_os("CHARGEWATCH_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    let (expected, actual): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(e, a, "{id}: event {i} differs");
    }
    assert_eq!(expected.len(), actual.len(), "{id}: event count differs");
}

macro_rules! golden {
    ($($id:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $id() {
                check(stringify!($id)).await;
            }
        )*
    };
}

golden!(
    tx_coil_overheat,
    pad_surface_overheat,
    rx_coil_overheat,
    battery_overtemp,
    temp_rise_rate,
    inverter_freq_out_of_band,
    inverter_overcurrent,
    grid_voltage_out_of_range,
    dc_bus_overvoltage,
    efficiency_low,
    misalignment,
    foreign_object,
    living_object,
    comm_loss,
    soc_stall,
    gbt32960_alarm,
    cell_voltage_spread,
    diagnosis,
);

#[tokio::test]
async fn every_builtin_rule_has_a_golden_test() {
    let rules = support::builtin(&[], &Overrides::new()).await;
    let source = include_str!("golden.rs");
    for rule in rules {
        assert!(
            source.contains(&format!("    {},\n", rule.id)),
            "no golden test for {}",
            rule.id
        );
    }
}

#[tokio::test]
async fn healthy_charging_fires_no_rule() {
    let mut text = String::new();
    for i in 0..5 {
        let vin = format!("LHEALTHY00000000{i}");
        text.push_str(&format!(
            "{{\"vin\":\"{vin}\",\"from\":0,\"to\":300,\"set\":{{\"soc\":[40,46]}}}}\n{{\"logout\":\"{vin}\",\"at\":300}}\n"
        ));
    }
    text.push_str("{\"end\":400}\n");
    let mut engine = support::engine(support::builtin(&[], &Overrides::new()).await);
    let events = support::run(&mut engine, &Script::parse(&text)).await;
    assert!(events.is_empty(), "{:?}", support::brief(&events));
}
