//! The Kubernetes manifests: each overlay rendered by `kubectl kustomize`, every object checked
//! against the Kubernetes API's types (k8s-openapi, v1.33), and the config each overlay ships
//! loaded by the binary's own loader (`chargewatch check-config`).
//!
//! k8s-openapi's types skip fields they do not know, so an object is deserialized, serialized
//! again and compared with what was rendered: a field that did not survive the round trip is a
//! field the API server would not know either (a typo such as `livenesProbe`, or a field at the
//! wrong level), and a value that changed had the wrong type.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use testkit::Scratch;

/// The base alone (its config is what overlays start from) and the two overlays.
const OVERLAYS: [&str; 3] = ["base", "overlays/dev", "overlays/prod"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize` of one kustomization under deploy/k8s, as JSON values (one per object).
fn render(overlay: &str) -> Vec<Value> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let dir = repo().join("deploy/k8s").join(overlay);
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kubectl} ({e}); scripts/test installs it"));
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    parse_yaml(&text)
}

fn parse_yaml(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The object as the API's type for its kind reads it back.
fn as_api_reads_it(object: &Value) -> Result<Value, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "Namespace") => round_trip::<Namespace>(object),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(object),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(object),
        ("v1", "Secret") => round_trip::<Secret>(object),
        ("v1", "Service") => round_trip::<Service>(object),
        ("v1", "PersistentVolumeClaim") => round_trip::<PersistentVolumeClaim>(object),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(object),
        ("batch/v1", "Job") => round_trip::<Job>(object),
        ("batch/v1", "CronJob") => round_trip::<CronJob>(object),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(object),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            round_trip::<HorizontalPodAutoscaler>(object)
        }
        _ => Err(format!("no API type known here for {api_version} {kind}")),
    }
}

/// Paths of `rendered` that `read_back` lost or changed.
fn differences(rendered: &Value, read_back: &Value, path: &str, out: &mut Vec<String>) {
    match (rendered, read_back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(back) => differences(value, back, &here, out),
                    None if value.is_null() => {}
                    None => out.push(format!("{here}: unknown field")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} read back as {b}")),
    }
}

/// Secret data as the API server decodes it: kustomize wraps long base64 values over lines,
/// which the server's base64 decoder (Go's) skips and k8s-openapi's does not.
fn unwrap_secret_data(object: &Value) -> Value {
    let mut object = object.clone();
    if object["kind"] == "Secret"
        && let Some(data) = object.get_mut("data").and_then(Value::as_object_mut)
    {
        for value in data.values_mut() {
            if let Some(text) = value.as_str() {
                *value = Value::from(text.replace(['\n', '\r'], ""));
            }
        }
    }
    object
}

/// Every problem the API would have with `object`, empty when it is valid.
fn validate(object: &Value) -> Vec<String> {
    let object = &unwrap_secret_data(object);
    let name = format!(
        "{} {}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    );
    match as_api_reads_it(object) {
        Err(error) => vec![format!("{name}: {error}")],
        Ok(back) => {
            let mut out = Vec::new();
            differences(object, &back, &name, &mut out);
            out
        }
    }
}

#[test]
fn the_validator_refuses_unknown_fields_and_wrong_types() {
    let good = parse_yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: x
          image: x
          livenessProbe: {httpGet: {path: /healthz, port: admin}}
"#,
    );
    assert_eq!(validate(&good[0]), Vec::<String>::new());
    let mut typo = good[0].clone();
    let container = &mut typo["spec"]["template"]["spec"]["containers"][0];
    let probe = container["livenessProbe"].take();
    container["livenesProbe"] = probe;
    let problems = validate(&typo);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("livenesProbe: unknown field")),
        "{problems:?}"
    );
    let mut wrong_type = good[0].clone();
    wrong_type["spec"]["replicas"] = Value::from("two");
    assert!(!validate(&wrong_type).is_empty());
    let mut misplaced = good[0].clone();
    misplaced["spec"]["terminationGracePeriodSeconds"] = Value::from(30);
    assert!(
        validate(&misplaced)
            .iter()
            .any(|p| p.contains("spec.terminationGracePeriodSeconds: unknown field")),
        "a pod field on the Deployment spec must be refused"
    );
    let unknown_kind =
        parse_yaml("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n");
    assert!(!validate(&unknown_kind[0]).is_empty());
}

fn objects_of<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

fn seconds(text: &str) -> i64 {
    text.strip_suffix('s').unwrap().parse().unwrap()
}

/// `chargewatch check-config` on a rendered ConfigMap's file, with `env` set: the loaded config.
fn check_config(file: &Path, env: &[(&str, &Path)]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chargewatch"));
    command.arg("check-config").arg("--config").arg(file);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "check-config {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn port_of(listen: &Value) -> i64 {
    listen
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What the pods say against what the config they mount says.
fn check_pods_match_config(overlay: &str, objects: &[Value], config: &Value) {
    let ports = BTreeMap::from([
        ("ingest", vec![port_of(&config["ingest"]["admin_listen"])]),
        (
            "processor",
            vec![port_of(&config["processor"]["admin_listen"])],
        ),
        ("sink", vec![port_of(&config["sink"]["admin_listen"])]),
        ("forward", vec![port_of(&config["forward"]["admin_listen"])]),
        (
            "query",
            vec![
                port_of(&config["query"]["http_listen"]),
                port_of(&config["query"]["flight_listen"]),
            ],
        ),
    ]);
    for (role, wanted) in &ports {
        let deployment: Deployment =
            serde_json::from_value(named(objects, "Deployment", role).clone()).unwrap();
        let spec = deployment.spec.unwrap();
        let pod: PodSpec = spec.template.spec.unwrap();
        let container = &pod.containers[0];
        let where_ = format!("{overlay} {role}");
        let declared: Vec<i64> = container
            .ports
            .iter()
            .flatten()
            .map(|p| i64::from(p.container_port))
            .collect();
        for port in wanted {
            assert!(
                declared.contains(port),
                "{where_}: config listens on {port}, pod declares {declared:?}"
            );
        }
        let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
            probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(
            probe_path(&container.liveness_probe).as_deref(),
            Some("/healthz"),
            "{where_}"
        );
        assert_eq!(
            probe_path(&container.readiness_probe).as_deref(),
            Some("/readyz"),
            "{where_}"
        );
        let resources = container.resources.as_ref().unwrap();
        assert!(
            resources
                .requests
                .as_ref()
                .is_some_and(|r| r.contains_key("memory")),
            "{where_}: memory request"
        );
        assert!(
            resources
                .limits
                .as_ref()
                .is_some_and(|r| r.contains_key("memory")),
            "{where_}: memory limit"
        );
        assert_eq!(
            pod.security_context
                .as_ref()
                .and_then(|s| s.run_as_non_root),
            Some(true),
            "{where_}"
        );
        // The drain must end before the kubelet's SIGKILL.
        let args = container.args.clone().unwrap_or_default();
        let drain = seconds(&arg_after(&args, "--drain-timeout").expect("--drain-timeout"));
        let grace = pod.termination_grace_period_seconds.unwrap();
        assert!(
            drain < grace,
            "{where_}: drain {drain}s not below grace {grace}s"
        );
        let env: BTreeMap<String, Option<String>> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        assert_eq!(
            env.get("CHARGEWATCH_LOG_JSON"),
            Some(&Some("true".into())),
            "{where_}"
        );
        let config_path = env["CHARGEWATCH_CONFIG"].clone().unwrap();
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        assert!(
            mounts.iter().any(|m| m.mount_path == config_path),
            "{where_}: the config file {config_path} is not mounted"
        );
    }
    // Ingest's key file lives in the mounted Secret's directory (no subPath: updates arrive).
    let ingest: Deployment =
        serde_json::from_value(named(objects, "Deployment", "ingest").clone()).unwrap();
    let pod = ingest.spec.unwrap().template.spec.unwrap();
    let keys = PathBuf::from(config["ingest"]["keys"].as_str().unwrap());
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| keys.starts_with(&m.mount_path))
        .unwrap_or_else(|| panic!("{overlay}: nothing mounted at {}", keys.display()));
    assert!(
        mount.sub_path.is_none(),
        "{overlay}: subPath blocks updates"
    );
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    assert_eq!(
        volume
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some("chargewatch-keys"),
        "{overlay}"
    );
    // A directory lake must be a volume the sink writes.
    let lake = config["lake"]["location"].as_str().unwrap();
    if lake.starts_with('/') {
        let sink: Deployment =
            serde_json::from_value(named(objects, "Deployment", "sink").clone()).unwrap();
        let pod = sink.spec.unwrap().template.spec.unwrap();
        assert!(
            pod.containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == lake && m.read_only != Some(true)),
            "{overlay}: lake.location {lake} is not a writable mount"
        );
    }
}

/// The processor autoscaler never goes past the partitions the topics Job creates.
fn check_scaling(overlay: &str, objects: &[Value]) {
    let job: Job =
        serde_json::from_value(named(objects, "Job", "chargewatch-topics").clone()).unwrap();
    let args = job.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    let partitions: i32 = arg_after(&args, "--partitions").unwrap().parse().unwrap();
    let replicas: BTreeMap<String, i32> = objects_of(objects, "Deployment")
        .into_iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_owned(),
                d["spec"]["replicas"].as_i64().unwrap() as i32,
            )
        })
        .collect();
    for consumer in ["processor", "sink"] {
        assert!(
            replicas[consumer] <= partitions,
            "{overlay}: {consumer} replicas above {partitions} partitions"
        );
    }
    for hpa in objects_of(objects, "HorizontalPodAutoscaler") {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(hpa.clone()).unwrap();
        let spec = hpa.spec.unwrap();
        if spec.scale_target_ref.name == "processor" {
            assert!(
                spec.max_replicas <= partitions,
                "{overlay}: processor may scale to {} over {partitions} partitions",
                spec.max_replicas
            );
        }
    }
    for pdb in objects_of(objects, "PodDisruptionBudget") {
        let name = pdb["metadata"]["name"].as_str().unwrap();
        assert!(
            replicas.contains_key(name),
            "{overlay}: PDB {name} guards nothing"
        );
    }
}

#[test]
fn overlays_render_validate_and_carry_a_config_the_roles_load() {
    let scratch = Scratch::new();
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let problems: Vec<String> = objects.iter().flat_map(validate).collect();
        assert!(problems.is_empty(), "{overlay}: {problems:#?}");
        for kind in [
            "Deployment",
            "Service",
            "ConfigMap",
            "PodDisruptionBudget",
            "Job",
        ] {
            assert!(
                !objects_of(&objects, kind).is_empty(),
                "{overlay}: no {kind}"
            );
        }
        assert_eq!(objects_of(&objects, "Deployment").len(), 5, "{overlay}");
        let ingest_service = named(&objects, "Service", "ingest");
        assert_eq!(ingest_service["spec"]["type"], "LoadBalancer");

        let config_map: ConfigMap = serde_json::from_value(
            objects_of(&objects, "ConfigMap")
                .into_iter()
                .find(|c| {
                    c["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("chargewatch-config"))
                })
                .unwrap()
                .clone(),
        )
        .unwrap();
        let file = scratch
            .0
            .join(format!("{}.toml", overlay.replace('/', "-")));
        std::fs::write(&file, &config_map.data.unwrap()["chargewatch.toml"]).unwrap();
        // The dev overlay ships its key file: load it as ingest would, from the Secret.
        let secrets = objects_of(&objects, "Secret");
        if let Some(secret) = secrets.first() {
            let secret: Secret = serde_json::from_value(unwrap_secret_data(secret)).unwrap();
            let keys = scratch.0.join("keys.toml");
            std::fs::write(&keys, &secret.data.unwrap()["keys.toml"].0).unwrap();
            check_config(&file, &[("CHARGEWATCH__INGEST__KEYS", &keys)]);
        }
        let config = check_config(&file, &[]);
        check_pods_match_config(overlay, &objects, &config);
        check_scaling(overlay, &objects);
    }
}

/// Metric names in a PromQL expression: the identifiers with a role's prefix.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            ["ingest_", "processor_", "sink_", "query_"]
                .iter()
                .any(|prefix| word.starts_with(prefix))
        })
        .map(|word| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

#[test]
fn the_dashboard_plots_metrics_the_roles_export() {
    let exported: String = ["ingest", "processor", "sinks", "query"]
        .iter()
        .map(|krate| std::fs::read_to_string(repo().join(krate).join("src/metrics.rs")).unwrap())
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/chargewatch.json")).unwrap(),
    )
    .unwrap();
    let mut plotted = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                assert!(
                    exported.contains(&format!("\"{name}\"")),
                    "panel {:?} plots {name}, which no role exports",
                    panel["title"]
                );
                plotted.push(name);
            }
        }
    }
    for wanted in [
        "ingest_frames_received_total",
        "ingest_rejects_total",
        "processor_consumer_lag_messages",
        "sink_consumer_lag_messages",
        "processor_alerts_total",
        "sink_bytes_written_total",
        "sink_files_written_total",
        "query_duration_seconds",
    ] {
        assert!(
            plotted.iter().any(|p| p == wanted),
            "no panel plots {wanted}"
        );
    }
}

/// The image is not built on these machines (no Docker engine): its build step must be a
/// command CI runs, and what it copies must exist.
#[test]
fn the_dockerfile_builds_as_ci_does() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let build = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("RUN "))
        .filter(|l| l.starts_with("cargo build"))
        .expect("the Dockerfile's first RUN is the cargo build");
    let build = build.trim_end_matches('\\').trim();
    assert!(
        ci.lines().any(|l| l.trim() == build),
        "CI does not run the Dockerfile's build step `{build}`"
    );
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let source = line.split_whitespace().nth(1).unwrap();
        assert!(repo().join(source).exists(), "{line}: no {source}");
    }
    assert!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root")),
        "the image must run as a non-root user"
    );
}
