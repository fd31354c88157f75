//! The deployment files, checked statically: every YAML and JSON under `deploy/` parses;
//! the compose file runs every part stowage needs; Kubernetes pods run under the runtime's
//! seccomp profile with a lame-duck delay and a grace period longer than it and the drain;
//! systemd units wait longer than the drain; the image's context leaves build output and
//! secrets out. `systemd-analyze verify` and `kubectl kustomize` run where installed.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_yaml_ng::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Files under `deploy/` ending in one of `extensions`, installed packages left out.
fn files(extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root().join("deploy")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "node_modules") {
                    pending.push(path);
                }
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every document of a YAML file, with `<<` merge keys applied.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            let mut value: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
        })
        .collect()
}

fn seconds(text: &str) -> u64 {
    text.trim_matches('"')
        .trim_end_matches('s')
        .parse()
        .unwrap()
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let yaml = files(&["yaml", "yml"]);
    assert!(yaml.len() >= 8, "{yaml:?}");
    for path in &yaml {
        assert!(!yaml_documents(path).is_empty(), "{}", path.display());
    }
    for path in files(&["json"]) {
        if path.ends_with("package-lock.json") || path.ends_with("package.json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn compose_runs_every_part_stowage_needs() {
    let compose = &yaml_documents(&root().join("deploy/compose.yaml"))[0];
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "azurite",
        "seaweedfs",
        "otel-collector",
        "migration-svc",
        "archive-svc",
    ] {
        assert!(
            services.contains_key(Value::from(name)),
            "compose lacks {name}"
        );
    }
    for name in ["migration-svc", "archive-svc"] {
        let service = &services[name];
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(command.first(), Some(&name));
        let config = command[2].trim_start_matches("/etc/stowage/");
        assert!(
            root().join("deploy/compose").join(config).exists(),
            "{config} is mounted but missing"
        );
        assert_eq!(service["stop_grace_period"].as_str(), Some("45s"));
    }
}

#[test]
fn kubernetes_pods_are_confined_and_leave_before_they_drain() {
    for name in ["migration-svc", "archive-svc"] {
        let path = root().join(format!("deploy/kubernetes/{name}.yaml"));
        let deployment = yaml_documents(&path)
            .into_iter()
            .find(|d| d["kind"].as_str() == Some("Deployment"))
            .unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{name}"
        );
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        let container = &pod["containers"][0];
        let lame_duck = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no preStop delay"));
        let drain = drain_timeout(name);
        assert!(
            grace > lame_duck + 2 * drain,
            "{name}: grace {grace}s against {lame_duck}s + twice the {drain}s drain"
        );
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"].as_bool(),
            Some(false)
        );
    }
}

/// `grpc.drain_timeout` of a service's configuration in the ConfigMap.
fn drain_timeout(name: &str) -> u64 {
    let config = &yaml_documents(&root().join("deploy/kubernetes/config.yaml"))[0];
    let toml = config["data"][format!("{name}.toml").as_str()]
        .as_str()
        .unwrap();
    toml.lines()
        .find_map(|line| line.strip_prefix("drain_timeout = "))
        .map(seconds)
        .unwrap()
}

#[test]
fn systemd_units_wait_longer_than_the_drain_and_verify() {
    for name in ["migration-svc", "archive-svc"] {
        let path = root().join(format!("deploy/systemd/{name}.service"));
        let unit = std::fs::read_to_string(&path).unwrap();
        let stop = unit
            .lines()
            .find_map(|line| line.strip_prefix("TimeoutStopSec="))
            .map(seconds)
            .unwrap();
        // the default drain (15s), once for calls and once for background work
        assert!(stop > 2 * 15, "{name}: TimeoutStopSec={stop}");
        assert!(unit.contains(&format!("ExecStart=/usr/local/bin/{name} ")));
        assert!(unit.contains("KillSignal=SIGTERM"));
    }
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed; the units were checked statically only");
        return;
    };
    assert!(version.status.success());
    let dir = tempdir("systemd");
    for name in ["migration-svc", "archive-svc"] {
        let unit = std::fs::read_to_string(root().join(format!("deploy/systemd/{name}.service")))
            .unwrap()
            // the binary is not installed here; verify checks the rest
            .replace(&format!("/usr/local/bin/{name}"), "/bin/true");
        std::fs::write(dir.join(format!("{name}.service")), unit).unwrap();
    }
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("migration-svc.service"))
        .arg(dir.join("archive-svc.service"))
        .output()
        .unwrap();
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[test]
fn the_kustomization_builds_where_kubectl_is_installed() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl is not installed; the manifests were checked statically only");
        return;
    }
    let dir = tempdir("kustomize");
    for entry in std::fs::read_dir(root().join("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    // secret.yaml is written by the operator from the example
    std::fs::copy(dir.join("secret.example.yaml"), dir.join("secret.yaml")).unwrap();
    let built = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let manifests = String::from_utf8(built.stdout).unwrap();
    assert_eq!(manifests.matches("kind: Deployment").count(), 2);
}

#[test]
fn the_image_context_leaves_build_output_packages_and_secrets_out() {
    let ignored = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for pattern in [
        "target",
        "**/node_modules",
        "deploy/kubernetes/secret.yaml",
        "**/*.key",
    ] {
        assert!(
            ignored.lines().any(|line| line.trim() == pattern),
            ".dockerignore lacks {pattern}"
        );
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stowage-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
