"""The cluster manifests in deploy/, checked without a cluster: rendered as `kubectl apply -k
deploy/` would render them, validated strictly against Kubernetes' own schemas
(kubernetes-validate, pinned version), and held to what the pipeline needs: the policies select the
pods the compiled pipeline labels, default deny, DNS, PostgreSQL in robson on 5432, external S3 as
an ipBlock on 443, KFP's services; the account pulls from ghcr and has only KFP's and Argo's rights.
"""

from __future__ import annotations

import copy
import ipaddress
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPILED = REPO / "compiled" / "deep_storage_pipeline.yaml"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests must load on
NAMESPACE = "analytics-jobs"
ACCOUNT = "deep-storage-pipeline"
BACKFILL = "deep-storage-backfill"
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def render(folder: Path) -> list[dict]:
    """A tiny `kustomize build`: the kustomization's resources, in order, with its namespace.

    Only what deploy/ uses is implemented; any other kustomization field fails here, so a
    manifest change that needs real kustomize cannot pass unnoticed.
    """
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - {"apiVersion", "kind", "namespace", "resources"}
    assert not unknown, f"render() does not implement {sorted(unknown)}: extend it"
    documents = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((folder / name).read_text()):
            if doc is None:
                continue
            doc = copy.deepcopy(doc)
            assert doc["kind"] not in CLUSTER_SCOPED, f"{name}: {doc['kind']} is cluster-wide"
            doc["metadata"]["namespace"] = kustomization["namespace"]
            documents.append(doc)
    return documents


MANIFESTS = render(DEPLOY)


def _key(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _of_kind(kind: str) -> list[dict]:
    return [d for d in MANIFESTS if d["kind"] == kind]


def _one(kind: str, name: str) -> dict:
    (doc,) = [d for d in _of_kind(kind) if d["metadata"]["name"] == name]
    return doc


def _compiled_executors() -> dict[str, dict]:
    platform = [d for d in yaml.safe_load_all(COMPILED.read_text()) if "platforms" in d]
    return platform[0]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels AND matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _egress_rules() -> list[tuple[str, dict]]:
    return [
        (p["metadata"]["name"], rule)
        for p in _of_kind("NetworkPolicy")
        for rule in p["spec"].get("egress") or []
    ]


def _ports(rule: dict) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports") or []}


def _namespace_of(peer: dict) -> str | None:
    return (
        (peer.get("namespaceSelector") or {})
        .get("matchLabels", {})
        .get("kubernetes.io/metadata.name")
    )


def _rules_with_port(port: int) -> list[dict]:
    return [rule for _, rule in _egress_rules() if any(p == port for _, p in _ports(rule))]


# --- rendering and schema --------------------------------------------------------------------


def test_render_matches_kubectl_kustomize():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not found: the tiny renderer is checked against it where it exists")
    proc = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    theirs = {_key(d): d for d in yaml.safe_load_all(proc.stdout) if d}
    assert theirs == {_key(d): d for d in MANIFESTS}


@pytest.mark.parametrize("doc", MANIFESTS, ids=_key)
def test_manifest_is_valid_kubernetes_in_strict_mode(doc):
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/" + "/".join(map(str, exc.path))
        pytest.fail(f"{_key(doc)} is not valid Kubernetes {K8S_VERSION}: {exc.message} at {where}")


def test_everything_lands_in_analytics_jobs():
    assert MANIFESTS
    assert {d["metadata"]["namespace"] for d in MANIFESTS} == {NAMESPACE}
    assert {d["kind"] for d in MANIFESTS} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "ConfigMap",
    }


# --- the pods the policies select ------------------------------------------------------------


def test_every_policy_selects_each_pipeline_task_and_nothing_unlabelled():
    executors = _compiled_executors()
    assert set(executors) == {
        "exec-bronze-ingest",
        "exec-silver-transform",
        "exec-quality-gate",
        "exec-retention",
    }
    for policy in _of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        for name, executor in executors.items():
            labels = executor["podMetadata"]["labels"]
            assert _selects(selector, labels), f"{policy['metadata']['name']} misses {name}"
        assert not _selects(selector, {}), f"{policy['metadata']['name']} selects every pod"
        assert not _selects(selector, {"app.kubernetes.io/name": "something-else"})


def test_default_deny_for_ingress_and_egress():
    deny = [
        p
        for p in _of_kind("NetworkPolicy")
        if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1


def test_only_spark_connects_in_between_the_projects_own_pods():
    """Ingress is Spark's alone (a backfill's driver and executors): from this project's pods,
    to the fixed driver and block-manager ports; nothing else connects in."""
    ours = {"matchLabels": {"app.kubernetes.io/name": "deep-storage"}}
    spark_ports = {("TCP", 7078), ("TCP", 7079)}
    for policy in _of_kind("NetworkPolicy"):
        ingress = policy["spec"].get("ingress") or []
        if policy["metadata"]["name"] != "deep-storage-allow-spark":
            assert not ingress, policy["metadata"]["name"]
            continue
        assert [peer for rule in ingress for peer in rule["from"]] == [{"podSelector": ours}]
        assert {p for rule in ingress for p in _ports(rule)} == spark_ports
        egress = policy["spec"]["egress"]
        assert [peer for rule in egress for peer in rule["to"]] == [{"podSelector": ours}]
        assert {p for rule in egress for p in _ports(rule)} == spark_ports


def test_every_egress_rule_names_its_destination_and_ports():
    # An egress rule without `to` allows every destination (how the first version "fixed" S3).
    for name, rule in _egress_rules():
        assert rule.get("to"), f"{name}: an egress rule without `to` opens every destination"
        assert rule.get("ports"), f"{name}: an egress rule without ports opens every port"
        assert all("protocol" in p for p in rule["ports"]), f"{name}: say TCP or UDP"


def test_dns_is_allowed_to_kube_dns_over_udp_and_tcp():
    rules = _rules_with_port(53)
    assert len(rules) == 1
    (rule,) = rules
    assert _ports(rule) == {("UDP", 53), ("TCP", 53)}
    (peer,) = rule["to"]
    assert _namespace_of(peer) == "kube-system"
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_database_egress_is_5432_to_the_paradedb_pod_in_robson_only():
    rules = _rules_with_port(5432)
    assert len(rules) == 1, "5432 must be opened once, to the database only"
    (rule,) = rules
    assert _ports(rule) == {("TCP", 5432)}
    # One peer with both selectors: the pod AND its namespace (two peers would be OR).
    assert len(rule["to"]) == 1
    (peer,) = rule["to"]
    assert _namespace_of(peer) == "robson"
    assert peer["podSelector"]["matchLabels"] == {"app": "rbs-paradedb"}
    assert "ipBlock" not in peer


def test_s3_egress_is_an_ip_block_on_443_excluding_private_ranges():
    rules = _rules_with_port(443)
    assert len(rules) == 1, "443 must be opened once, to the external object storage"
    (rule,) = rules
    assert _ports(rule) == {("TCP", 443)}
    for peer in rule["to"]:
        # Selectors only ever match pods inside the cluster, never traffic leaving it.
        assert set(peer) == {"ipBlock"}, f"S3 is outside the cluster: ipBlock only, not {peer}"
    (peer,) = rule["to"]
    assert peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert set(peer["ipBlock"]["except"]) == PRIVATE_RANGES
    for cidr in PRIVATE_RANGES | set(peer["ipBlock"]["except"]):
        assert ipaddress.ip_network(cidr).is_private


def test_kfp_launcher_services_are_reachable_in_kubeflow():
    needed = {8887, 8888, 8080, 9000}
    rules = [
        rule
        for _, rule in _egress_rules()
        if any(_namespace_of(peer) == "kubeflow" for peer in rule["to"])
    ]
    assert len(rules) == 1
    (rule,) = rules
    assert needed <= {port for proto, port in _ports(rule) if proto == "TCP"}
    assert all(set(peer) == {"namespaceSelector"} for peer in rule["to"])


def test_api_server_is_reachable_for_kfp_and_argo():
    rules = _rules_with_port(6443)
    assert len(rules) == 1
    (rule,) = rules
    assert _ports(rule) == {("TCP", 6443)}
    assert all(set(peer) == {"ipBlock"} for peer in rule["to"])


def test_no_other_port_is_opened():
    opened = {port for _, rule in _egress_rules() for _, port in _ports(rule)}
    assert opened == {53, 5432, 443, 8887, 8888, 8080, 9000, 8333, 6443, 7078, 7079, 9091}


def test_the_pushgateway_is_reachable_at_the_address_and_port_the_steps_push_to():
    from urllib.parse import urlsplit

    url = urlsplit(_one("ConfigMap", "deep-storage-settings")["data"]["PUSHGATEWAY_URL"])
    service, namespace, *_ = url.hostname.split(".")
    rules = _rules_with_port(url.port)
    assert len(rules) == 1, f"port {url.port} must be opened once, to the Pushgateway only"
    (rule,) = rules
    assert _ports(rule) == {("TCP", url.port)}
    # One peer with both selectors: the Pushgateway's pods AND their namespace.
    (peer,) = rule["to"]
    assert _namespace_of(peer) == namespace
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": service}
    assert "ipBlock" not in peer


# --- the account and its rights --------------------------------------------------------------


def test_both_accounts_pull_with_the_secret_the_tasks_name():
    for account in (_one("ServiceAccount", ACCOUNT), _one("ServiceAccount", BACKFILL)):
        pulls = {s["name"] for s in account["imagePullSecrets"]}
        for name, executor in _compiled_executors().items():
            named = {s["secretName"] for s in executor["imagePullSecret"]}
            assert named == pulls == {"ghcr-pull-secret"}, name
        # KFP's launcher and Argo's wait container use the token (and the backfill's driver).
        assert account.get("automountServiceAccountToken", True) is True
    assert {a["metadata"]["name"] for a in _of_kind("ServiceAccount")} == {ACCOUNT, BACKFILL}


def _granted(role: str) -> set[tuple]:
    return {
        (group, resource, verb, tuple(rule.get("resourceNames") or ()))
        for rule in _one("Role", role)["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


KFP_AND_ARGO = {
    ("argoproj.io", "workflowtaskresults", "create", ()),
    ("argoproj.io", "workflowtaskresults", "patch", ()),
    ("", "configmaps", "get", ("kfp-launcher",)),
    ("", "secrets", "get", ("mlpipeline-minio-artifact",)),
}


def test_each_account_is_bound_to_its_own_role_only():
    assert sorted(r["metadata"]["name"] for r in _of_kind("Role")) == sorted([ACCOUNT, BACKFILL])
    for name in (ACCOUNT, BACKFILL):
        binding = _one("RoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}
        ]
    assert not _of_kind("ClusterRole") and not _of_kind("ClusterRoleBinding")


def test_the_scheduled_runs_account_holds_kfp_and_argo_rights_and_cannot_create_pods():
    granted = _granted(ACCOUNT)
    assert granted == KFP_AND_ARGO
    assert not {g for g in granted if g[1] == "pods"}, "creating a pod reads every secret"


def test_only_the_backfill_account_manages_executor_pods():
    assert _granted(BACKFILL) == KFP_AND_ARGO | {
        # a Spark driver on Kubernetes manages its executor pods, in this namespace only
        *(
            ("", resource, verb, ())
            for resource in ("pods", "configmaps")
            for verb in ("create", "get", "list", "watch", "delete", "deletecollection")
        ),
        ("", "persistentvolumeclaims", "get", ()),
        ("", "persistentvolumeclaims", "list", ()),
    }


def test_the_backfill_variant_names_the_backfill_account_and_its_executors_mount_no_token(
    tmp_path,
):
    from kfp import compiler

    from deep_storage_kfp.pipelines.deep_storage_pipeline import build

    path = tmp_path / "executors.yaml"
    compiler.Compiler().compile(build(executors=2), str(path))
    text = path.read_text()
    named = '"spark.kubernetes.authenticate.driver.serviceAccountName": "{}"'
    assert text.count(named.format(BACKFILL)) == 2  # silver's and the gate's drivers
    assert ACCOUNT not in text, "the backfill variant must not name the scheduled runs' account"
    # The default pipeline names no account that may create pods.
    assert BACKFILL not in COMPILED.read_text()
    (template,) = [
        yaml.safe_load(d["data"]["executor-pod-template.yaml"])
        for d in _of_kind("ConfigMap")
        if d["metadata"]["name"] == "deep-storage-executor-template"
    ]
    assert template["spec"]["automountServiceAccountToken"] is False


def test_alert_rules_use_only_metrics_the_steps_push():
    """Every series an alert reads is one deep_storage/io/metrics.py pushes for its step."""
    import re

    from deep_storage.io import metrics

    rules = yaml.safe_load((DEPLOY / "alerts" / "deep-storage.rules.yml").read_text())
    (group,) = rules["groups"]
    names = {r["alert"] for r in group["rules"]}
    assert {"DeepStorageSilverNoRecentSuccess", "DeepStorageSilverLagPastSLA"} <= names
    pushed = {
        f"deep_storage_{step}_{name}"
        for step in ("bronze", "silver", "validate")
        for name in metrics._HELP
    } | {f"deep_storage_validate_{t}_freshness_lag_seconds" for t in ("bronze", "silver")}
    for rule in group["rules"]:
        used = set(re.findall(r"deep_storage_[a-z_]+", rule["expr"]))
        assert used and used <= pushed, (rule["alert"], used - pushed)
        assert 'job="deep-storage"' in rule["expr"]


def test_a_failed_day_keeps_its_alert_when_a_later_day_passes(tmp_path):
    """The alert rules evaluated by Prometheus's own promtool (Debian's `prometheus`) on the
    series a two-day gate run leaves in the Pushgateway: yesterday failed, today passed."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus"
    group = 'job="deep-storage",step="validate",date="{}"'
    series = "deep_storage_validate_rules_broken{{" + group + ',level="fail"}}'
    success = "deep_storage_validate_last_success_timestamp_seconds{{" + group + "}}"
    case = {
        "rule_files": [str(DEPLOY / "alerts" / "deep-storage.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series.format("2025-06-01"), "values": "1x30"},
                    {"series": series.format("2025-06-02"), "values": "0x30"},
                    # today's pass is recent: the gate as a whole has succeeded
                    {"series": success.format("2025-06-02"), "values": "0+60x30"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "DeepStorageQualityGateFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "ticket", "date": "2025-06-01"},
                                "exp_annotations": {
                                    "summary": "1 fail-level quality rules broke on 2025-06-01",
                                    "description": "The day's last gate run failed; the gate's "
                                    "report is in that run's page. It clears when a run of the "
                                    "same day passes.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "DeepStorageGateNoRecentSuccess",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "alerts-test.yml"
    path.write_text(yaml.safe_dump(case, sort_keys=False))
    proc = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
