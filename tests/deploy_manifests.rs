//! `deploy/` for Kubernetes, systemd and containers (issue 10): every
//! Kubernetes manifest validates against the Kubernetes schemas (offline,
//! `kubernetes-validate --strict`), the manifests agree with each other and
//! with tagwarden (its config loader, ports, paths, drain budget, the shipped
//! rules), a kubelet-style ConfigMap symlink swap reloads the rules, the systemd
//! unit passes `systemd-analyze verify`, and the Dockerfile is multi-stage and
//! non-root.
//!
//! `tests/run.sh` installs the tools and sets `TAGWARDEN_REQUIRE_TOOLS=1`, so in
//! CI a missing tool fails the test; elsewhere the tool checks say why they
//! did not run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use arc_swap::ArcSwap;
use serde_yaml::Value;

use tagwarden::config::Config;
use tagwarden::metrics::Metrics;
use tagwarden::reload::RulesWatch;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn k8s() -> PathBuf {
    repo().join("deploy/kubernetes")
}

fn yaml(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(k8s().join(name)).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

fn one(name: &str) -> Value {
    let mut docs = yaml(name);
    assert_eq!(docs.len(), 1, "{name}: one document expected");
    docs.remove(0)
}

/// `v[a][b]…`, panicking with the path when absent.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| {
        let next = match k.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(k),
        };
        next.unwrap_or_else(|| panic!("no `{path}` (stopped at `{k}`)"))
    })
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_else(|| panic!("`{path}` is not a string"))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    at(v, path).as_sequence().unwrap_or_else(|| panic!("`{path}` is not a list"))
}

fn find<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(name)).unwrap_or_else(|| panic!("no `{name}`"))
}

/// The Deployment with the rules volume's items from `rules-volume.yaml`
/// merged in, as `kubectl apply -k` produces it.
fn deployment() -> Value {
    let mut d = one("deployment.yaml");
    let patch = one("rules-volume.yaml");
    let items = at(find(seq(&patch, "spec.template.spec.volumes"), "rules"), "configMap.items").clone();
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_sequence_mut().unwrap();
    let rules = volumes.iter_mut().find(|v| v["name"] == "rules").unwrap();
    rules["configMap"].as_mapping_mut().unwrap().insert("items".into(), items);
    d
}

fn tool_missing(tool: &str) {
    let msg = format!("{tool} is not installed (tests/run.sh installs it)");
    assert!(std::env::var_os("TAGWARDEN_REQUIRE_TOOLS").is_none(), "{msg}");
    eprintln!("skipped: {msg}");
}

fn kubernetes_validate() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TAGWARDEN_KUBERNETES_VALIDATE").map(PathBuf::from),
        Some(repo().join("target/tools/venv/bin/kubernetes-validate")),
        Some(PathBuf::from("kubernetes-validate")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn every_kubernetes_manifest_validates_against_the_schemas() {
    let Some(tool) = kubernetes_validate() else { return tool_missing("kubernetes-validate") };
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("deployment.yaml");
    std::fs::write(&merged, serde_yaml::to_string(&deployment()).unwrap()).unwrap();
    let core =
        ["config.yaml", "rules.yaml", "service.yaml", "secret.yaml", "hpa.yaml", "pdb.yaml", "networkpolicy.yaml"];
    let mut files: Vec<PathBuf> = core.iter().map(|f| k8s().join(f)).collect();
    files.push(merged);
    let out = Command::new(&tool).arg("--strict").arg("--quiet").args(&files).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && !report.contains("ERROR"), "kubernetes-validate:\n{report}");

    // Every file is checked: by the schemas above, or below (the patch, the CRD, kustomize).
    let checked: BTreeSet<&str> = core
        .iter()
        .copied()
        .chain(["deployment.yaml", "rules-volume.yaml", "servicemonitor.yaml", "kustomization.yaml"])
        .collect();
    for e in std::fs::read_dir(k8s()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") {
            assert!(checked.contains(name.as_str()), "{name} is not validated by any test");
        }
    }
    // And the schema check can fail: a misspelt field is refused.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(k8s().join("pdb.yaml")).unwrap().replace("minAvailable", "minAvailible");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(&tool).arg("--strict").arg("--quiet").arg(&bad).output().unwrap();
    assert!(!out.status.success(), "kubernetes-validate accepted an unknown field");
}

#[test]
fn kustomization_applies_every_resource_but_the_secret_placeholder() {
    let k = one("kustomization.yaml");
    let resources: BTreeSet<&str> = seq(&k, "resources").iter().map(|v| v.as_str().unwrap()).collect();
    let expected: BTreeSet<&str> = [
        "config.yaml",
        "rules.yaml",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "networkpolicy.yaml",
        "servicemonitor.yaml",
    ]
    .into();
    assert_eq!(resources, expected);
    assert_eq!(s(&seq(&k, "patches")[0], "path"), "rules-volume.yaml");
}

#[test]
fn the_rules_configmap_is_the_shipped_rules_mounted_as_tagwarden_reads_them() {
    let cm = one("rules.yaml");
    let data: BTreeMap<String, String> = serde_yaml::from_value(at(&cm, "data").clone()).unwrap();
    let mut shipped = BTreeMap::new();
    shipped.insert("site.toml".to_string(), std::fs::read_to_string(repo().join("rules/site.toml")).unwrap());
    for e in std::fs::read_dir(repo().join("rules/vendors")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        shipped.insert(format!("vendors.{name}"), std::fs::read_to_string(&p).unwrap());
    }
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        shipped.keys().collect::<Vec<_>>(),
        "rules.yaml is out of date: run deploy/kubernetes/rules.sh"
    );
    for (k, v) in &shipped {
        assert_eq!(&data[k], v, "{k} differs from rules/: run deploy/kubernetes/rules.sh");
    }
    let d = deployment();
    let items = seq(find(seq(&d, "spec.template.spec.volumes"), "rules"), "configMap.items");
    let mapped: BTreeMap<&str, &str> = items.iter().map(|i| (s(i, "key"), s(i, "path"))).collect();
    assert_eq!(mapped.len(), shipped.len());
    for k in shipped.keys() {
        assert_eq!(mapped[k.as_str()], k.replacen("vendors.", "vendors/", 1), "{k}");
    }
}

#[test]
fn the_deployment_agrees_with_the_config_it_mounts() {
    let d = deployment();
    let pod = at(&d, "spec.template.spec");
    let c = &seq(pod, "containers")[0];
    let mounts: BTreeMap<&str, &str> =
        seq(c, "volumeMounts").iter().map(|m| (s(m, "name"), s(m, "mountPath"))).collect();
    let args: Vec<&str> = seq(c, "args").iter().map(|a| a.as_str().unwrap()).collect();
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    assert_eq!(Path::new(config_path).parent().unwrap(), Path::new(mounts["config"]));

    // The config in the ConfigMap loads with tagwarden's own (strict) loader.
    let cm = one("config.yaml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tagwarden.toml");
    std::fs::write(&file, at(&cm, "data")["tagwarden.toml"].as_str().unwrap()).unwrap();
    let cfg = Config::load(&file).unwrap_or_else(|e| panic!("config.yaml: {e}"));
    assert_eq!(cfg.rules, Path::new(mounts["rules"]));
    let tls = cfg.tls.as_ref().expect("[tls]");
    for cert in &tls.certificates {
        assert!(cert.cert_file.starts_with(mounts["tls"]) && cert.key_file.starts_with(mounts["tls"]));
    }
    assert!(cfg.listen.upgrade_socket.starts_with(mounts["tmp"]), "the upgrade socket needs a writable dir");
    let ports: BTreeMap<&str, u64> =
        seq(c, "ports").iter().map(|p| (s(p, "name"), at(p, "containerPort").as_u64().unwrap())).collect();
    assert_eq!(ports["http"], u64::from(cfg.listen.address.port()));
    assert_eq!(ports["https"], u64::from(cfg.listen.tls_address.unwrap().port()));
    assert_eq!(ports["admin"], u64::from(cfg.admin.address.port()));

    // Probes on the admin listener's health endpoints.
    assert_eq!(s(c, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(s(c, "readinessProbe.httpGet.path"), "/readyz");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(s(c, &format!("{probe}.httpGet.port")), "admin");
    }
    // The drain fits: preStop, then SIGTERM and shutdown_grace_seconds, inside the kill deadline.
    let pre_stop = at(c, "lifecycle.preStop.sleep.seconds").as_u64().unwrap();
    let budget = at(pod, "terminationGracePeriodSeconds").as_u64().unwrap();
    assert!(pre_stop + cfg.limits.shutdown_grace_seconds < budget, "{pre_stop} + grace ≥ {budget}");
    // Non-root, read-only root filesystem, nothing to escalate.
    assert_eq!(at(pod, "securityContext.runAsNonRoot").as_bool(), Some(true));
    assert_eq!(at(c, "securityContext.readOnlyRootFilesystem").as_bool(), Some(true));
    assert_eq!(at(c, "securityContext.allowPrivilegeEscalation").as_bool(), Some(false));
    assert_eq!(seq(c, "securityContext.capabilities.drop")[0].as_str(), Some("ALL"));
    assert!(at(c, "resources.requests.cpu").as_str().is_some(), "the HPA needs a CPU request");
}

#[test]
fn services_monitors_and_policies_name_ports_and_labels_that_exist() {
    let d = deployment();
    let labels = at(&d, "spec.template.metadata.labels").clone();
    let c = &seq(at(&d, "spec.template.spec"), "containers")[0];
    let port_names: BTreeSet<&str> = seq(c, "ports").iter().map(|p| s(p, "name")).collect();
    let selects = |selector: &Value| {
        selector.as_mapping().unwrap().iter().all(|(k, v)| labels.get(k.as_str().unwrap()) == Some(v))
    };
    let services = yaml("service.yaml");
    for svc in &services {
        assert!(selects(at(svc, "spec.selector")), "{} selects no pod", s(svc, "metadata.name"));
        for p in seq(svc, "spec.ports") {
            assert!(port_names.contains(s(p, "targetPort")), "{}", s(p, "targetPort"));
        }
    }
    // The admin port is not on the public Service.
    let public = services.iter().find(|v| s(v, "metadata.name") == "tagwarden").unwrap();
    assert!(seq(public, "spec.ports").iter().all(|p| s(p, "targetPort") != "admin"));

    let sm = one("servicemonitor.yaml");
    assert_eq!(s(&sm, "apiVersion"), "monitoring.coreos.com/v1");
    let wanted = at(&sm, "spec.selector.matchLabels").as_mapping().unwrap();
    let metrics = services
        .iter()
        .find(|v| wanted.iter().all(|(k, val)| at(v, "metadata.labels").get(k.as_str().unwrap()) == Some(val)))
        .expect("the ServiceMonitor selects no Service");
    let endpoint = &seq(&sm, "spec.endpoints")[0];
    assert!(seq(metrics, "spec.ports").iter().any(|p| s(p, "name") == s(endpoint, "port")));
    assert_eq!(s(endpoint, "path"), "/metrics");

    let np = one("networkpolicy.yaml");
    for rule in seq(&np, "spec.ingress") {
        for p in seq(rule, "ports") {
            assert!(port_names.contains(s(p, "port")), "NetworkPolicy names port {}", s(p, "port"));
        }
    }
    assert!(selects(at(&np, "spec.podSelector.matchLabels")));
    assert!(selects(at(&one("pdb.yaml"), "spec.selector.matchLabels")));
    let hpa = one("hpa.yaml");
    assert_eq!(s(&hpa, "spec.scaleTargetRef.kind"), "Deployment");
    assert_eq!(s(&hpa, "spec.scaleTargetRef.name"), s(&d, "metadata.name"));
}

/// Lays out `files` as kubelet's atomic writer does for a ConfigMap volume:
/// `..<ts>/<path>`, `..data -> ..<ts>`, and top-level links into `..data`.
fn kubelet_write(dir: &Path, ts: &str, files: &BTreeMap<String, String>) {
    let gen_dir = dir.join(format!("..{ts}"));
    for (path, text) in files {
        let p = gen_dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{ts}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for top in ["site.toml", "vendors"] {
        let link = dir.join(top);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), link).unwrap();
        }
    }
}

#[test]
fn a_kubelet_configmap_symlink_swap_reloads_the_rules() {
    let mut files = BTreeMap::new();
    files.insert("site.toml".to_string(), std::fs::read_to_string(repo().join("rules/site.toml")).unwrap());
    for e in std::fs::read_dir(repo().join("rules/vendors")).unwrap() {
        let p = e.unwrap().path();
        files.insert(
            format!("vendors/{}", p.file_name().unwrap().to_str().unwrap()),
            std::fs::read_to_string(&p).unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), "2026_12_01_01", &files);
    let policy = tagwarden::rules::load_dir(dir.path()).expect("rules load through the kubelet layout");
    let first = policy.version.clone();
    let current = ArcSwap::from_pointee(policy);
    let metrics = Metrics::new();
    let mut watch = RulesWatch::new(dir.path().to_path_buf(), &first);
    assert_eq!(watch.poll(&current, &metrics), None, "nothing changed yet");

    // An edit arrives as a new generation and an atomic swap of ..data.
    let mut edited = files.clone();
    edited.get_mut("site.toml").unwrap().push_str("\n# edited in the ConfigMap\n");
    kubelet_write(dir.path(), "2026_12_01_02", &edited);
    assert_eq!(watch.poll(&current, &metrics), Some(true), "the swap was not seen");
    let second = current.load().version.clone();
    assert_ne!(second, first);

    // A broken edit is tried once and the last good rules stay.
    let mut broken = edited.clone();
    broken.get_mut("site.toml").unwrap().push_str("\n[site\n");
    kubelet_write(dir.path(), "2026_12_01_03", &broken);
    assert_eq!(watch.poll(&current, &metrics), Some(false));
    assert_eq!(current.load().version, second);
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/tagwarden.service")).unwrap();
    for directive in [
        "User=tagwarden",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Type=notify",
        "NotifyAccess=all",
    ] {
        assert!(unit.lines().any(|l| l == directive), "missing {directive}");
    }
    let read_only = unit.lines().find_map(|l| l.strip_prefix("ReadOnlyPaths=")).expect("ReadOnlyPaths");
    assert!(read_only.contains("/etc/tagwarden/rules") && read_only.contains("/etc/tagwarden/tls"));
    assert!(unit.contains("systemctl kill --signal=SIGUSR2 --kill-whom=main tagwarden"), "upgrade command");

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("tagwarden.service");
    std::fs::write(&local, unit.replace("/usr/local/bin/tagwarden", env!("CARGO_BIN_EXE_tagwarden"))).unwrap();
    let out = match Command::new("systemd-analyze").arg("verify").arg(&local).output() {
        Ok(out) => out,
        Err(_) => return tool_missing("systemd-analyze"),
    };
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}");
    // And it can fail: an unknown directive is reported.
    std::fs::write(&local, std::fs::read_to_string(&local).unwrap().replace("NoNewPrivileges", "NoNewPrivilegs"))
        .unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&local).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty(), "a misspelt directive went unreported");
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_matches_the_deployment() {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(froms[1].contains("distroless"), "small runtime image: {}", froms[1]);
    let runtime = &lines[lines.iter().position(|l| l == froms[1]).unwrap()..];
    let user = runtime.iter().find_map(|l| l.strip_prefix("USER ")).expect("USER in the runtime stage");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("numeric USER (runAsNonRoot needs it)");
    assert_ne!(uid, 0);
    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=build") && l.contains("/usr/local/bin/tagwarden")));
    assert!(!lines.iter().any(|l| l.starts_with("ADD ")), "COPY, not ADD");
    let d = deployment();
    assert_eq!(at(&d, "spec.template.spec.securityContext.runAsUser").as_u64(), Some(u64::from(uid)));
    let exposed: BTreeSet<u64> = runtime
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<u64>().unwrap()))
        .collect();
    let c = &seq(at(&d, "spec.template.spec"), "containers")[0];
    let ports: BTreeSet<u64> = seq(c, "ports").iter().map(|p| at(p, "containerPort").as_u64().unwrap()).collect();
    assert_eq!(exposed, ports);
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/"), "the build context would carry target/");
}
