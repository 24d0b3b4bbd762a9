"""The cluster manifests in deploy/, checked without a cluster: rendered as `kubectl apply -k
deploy/` would render them, validated strictly against Kubernetes' own schemas
(kubernetes-validate, pinned version), and held to what the pipeline needs: the policies select the
pods the compiled pipeline labels, default deny, DNS, PostgreSQL in robson on 5432, external S3 as
an ipBlock on 443, KFP's services; the account pulls from ghcr and has only KFP's and Argo's rights.
The Hive Metastore (metastore.yaml) runs the image's metastore.sh with the keys it requires from its
own secret, locked down, behind policies of its own; the settings, the pipeline's egress and the
example Trino catalog name the same Service and port.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPILED = REPO / "compiled" / "deep_storage_pipeline.yaml"
METASTORE_SH = REPO / "spark_image" / "metastore.sh"
HIVE_SITE = REPO / "spark_image" / "hive-conf" / "hive-site.xml"
DOCKERFILE = REPO / "spark_image" / "Dockerfile"
TRINO_CATALOG = DEPLOY / "trino" / "deep_storage.properties"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests must load on
NAMESPACE = "analytics-jobs"
ACCOUNT = "deep-storage-pipeline"
BACKFILL = "deep-storage-backfill"
METASTORE = "deep-storage-metastore"  # the Deployment and its Service
SCHEMA_JOB = "deep-storage-metastore-schema"
METASTORE_SECRET = "deep-storage-metastore-db"
SETTINGS = "deep-storage-settings"
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


def _pod_labels(pods: str) -> dict[str, str]:
    """The labels of one kind of pod: "pipeline" (the first task of compiled/: the same policies
    select every task, as the first test below checks), "metastore" (the server) or "schema"
    (its Job)."""
    if pods == "pipeline":
        return next(iter(_compiled_executors().values()))["podMetadata"]["labels"]
    kind, name = {"metastore": ("Deployment", METASTORE), "schema": ("Job", SCHEMA_JOB)}[pods]
    return _one(kind, name)["spec"]["template"]["metadata"]["labels"]


def _policies_for(pods: str) -> list[dict]:
    labels = _pod_labels(pods)
    return [p for p in _of_kind("NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]


def _egress_rules(pods: str = "pipeline") -> list[tuple[str, dict]]:
    return [
        (p["metadata"]["name"], rule)
        for p in _policies_for(pods)
        for rule in p["spec"].get("egress") or []
    ]


def _ingress_rules(pods: str) -> list[dict]:
    return [rule for p in _policies_for(pods) for rule in p["spec"].get("ingress") or []]


def _ports(rule: dict) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports") or []}


def _namespace_of(peer: dict) -> str | None:
    return (
        (peer.get("namespaceSelector") or {})
        .get("matchLabels", {})
        .get("kubernetes.io/metadata.name")
    )


def _rules_with_port(port: int, pods: str = "pipeline") -> list[dict]:
    return [rule for _, rule in _egress_rules(pods) if any(p == port for _, p in _ports(rule))]


def _metastore_pod_specs() -> dict[str, dict]:
    return {
        "Deployment": _one("Deployment", METASTORE)["spec"]["template"]["spec"],
        "Job": _one("Job", SCHEMA_JOB)["spec"]["template"]["spec"],
    }


def _metastore_uri() -> str:
    return _one("ConfigMap", SETTINGS)["data"]["HIVE_METASTORE_URI"]


def _container_port(port: int | str) -> int:
    """A Service's targetPort (a number or a port's name) as the metastore container's port."""
    (container,) = _metastore_pod_specs()["Deployment"]["containers"]
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in container["ports"]}, port
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


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
        "Deployment",
        "Service",
        "Job",
    }


# --- the pods the policies select ------------------------------------------------------------


def test_every_policy_selects_each_pipeline_task_or_only_the_metastores_pods():
    """A policy is the pipeline's (it selects every task) or the metastore's (its server or schema
    Job), never both: the metastore does not carry the pipeline's label."""
    executors = _compiled_executors()
    assert set(executors) == {
        "exec-bronze-ingest",
        "exec-silver-transform",
        "exec-quality-gate",
        "exec-retention",
        "exec-catalog-tables",
    }
    metastore = (_pod_labels("metastore"), _pod_labels("schema"))
    for policy in _of_kind("NetworkPolicy"):
        name, selector = policy["metadata"]["name"], policy["spec"]["podSelector"]
        tasks = {
            task: _selects(selector, e["podMetadata"]["labels"]) for task, e in executors.items()
        }
        if any(tasks.values()):
            assert all(tasks.values()), f"{name} misses {[t for t, ok in tasks.items() if not ok]}"
            assert not any(_selects(selector, m) for m in metastore), f"{name} selects both"
        else:
            assert any(_selects(selector, m) for m in metastore), f"{name} selects no known pod"
        assert not _selects(selector, {}), f"{name} selects every pod"
        assert not _selects(selector, {"app.kubernetes.io/name": "something-else"})


@pytest.mark.parametrize("pods", ["pipeline", "metastore", "schema"])
def test_default_deny_for_ingress_and_egress(pods):
    deny = [
        p
        for p in _policies_for(pods)
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
    for policy in _policies_for("pipeline"):
        ingress = policy["spec"].get("ingress") or []
        if policy["metadata"]["name"] != "deep-storage-allow-spark":
            assert not ingress, policy["metadata"]["name"]
            continue
        assert [peer for rule in ingress for peer in rule["from"]] == [{"podSelector": ours}]
        assert {p for rule in ingress for p in _ports(rule)} == spark_ports
        egress = policy["spec"]["egress"]
        assert [peer for rule in egress for peer in rule["to"]] == [{"podSelector": ours}]
        assert {p for rule in egress for p in _ports(rule)} == spark_ports


@pytest.mark.parametrize("pods", ["pipeline", "metastore", "schema"])
def test_every_egress_rule_names_its_destination_and_ports(pods):
    # An egress rule without `to` allows every destination (how the first version "fixed" S3).
    for name, rule in _egress_rules(pods):
        assert rule.get("to"), f"{name}: an egress rule without `to` opens every destination"
        assert rule.get("ports"), f"{name}: an egress rule without ports opens every port"
        assert all("protocol" in p for p in rule["ports"]), f"{name}: say TCP or UDP"


@pytest.mark.parametrize("pods", ["pipeline", "metastore", "schema"])
def test_dns_is_allowed_to_kube_dns_over_udp_and_tcp(pods):
    rules = _rules_with_port(53, pods)
    assert len(rules) == 1
    (rule,) = rules
    assert _ports(rule) == {("UDP", 53), ("TCP", 53)}
    (peer,) = rule["to"]
    assert _namespace_of(peer) == "kube-system"
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


@pytest.mark.parametrize("pods", ["pipeline", "metastore", "schema"])
def test_database_egress_is_5432_to_the_paradedb_pod_in_robson_only(pods):
    """The source for the pipeline; the metastore's own database, on the same server."""
    rules = _rules_with_port(5432, pods)
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


@pytest.mark.parametrize(
    ("pods", "ports"),
    [
        ("pipeline", {53, 5432, 443, 8887, 8888, 8080, 9000, 8333, 6443, 7078, 7079, 9091, 9083}),
        ("metastore", {53, 5432}),  # no S3: the tables are external, the metastore never reads them
        ("schema", {53, 5432}),
    ],
)
def test_no_other_port_is_opened(pods, ports):
    opened = {port for _, rule in _egress_rules(pods) for _, port in _ports(rule)}
    assert opened == ports


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


# --- the catalog: the Hive Metastore ---------------------------------------------------------


def _required_by_metastore_sh() -> set[str]:
    """The variables metastore.sh refuses to start without (its `: "${NAME:?...}"` lines)."""
    return set(re.findall(r'^: "\$\{(METASTORE_DB_[A-Z_]+):\?', METASTORE_SH.read_text(), re.M))


def _defaulted_by_metastore_sh() -> set[str]:
    """The variables metastore.sh gives a default (`export NAME=${NAME:-...}`)."""
    text = METASTORE_SH.read_text()
    return set(re.findall(r"^export ([A-Z_]+)=\$\{\1:-", text, re.M))


def test_the_metastore_server_schema_job_and_service_exist():
    server = _one("Deployment", METASTORE)
    assert server["spec"]["replicas"] == 1
    job = _one("Job", SCHEMA_JOB)
    assert job["spec"]["backoffLimit"] <= 3
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    service = _one("Service", METASTORE)
    # The Service reaches the server's pods, and not the schema Job's.
    selector = {"matchLabels": service["spec"]["selector"]}
    assert selector == server["spec"]["selector"]
    assert _selects(selector, _pod_labels("metastore"))
    assert not _selects(selector, _pod_labels("schema"))
    assert _pod_labels("metastore")["app.kubernetes.io/part-of"] == "deep-storage"


def test_the_metastore_runs_the_images_metastore_script_in_the_components_image():
    from deep_storage_kfp.components._image import IMAGE

    script = METASTORE_SH.read_text()
    for kind, command in (("Deployment", "serve"), ("Job", "init-schema")):
        (container,) = _metastore_pod_specs()[kind]["containers"]
        assert container["image"] == IMAGE, f"{kind}: the image must follow the package version"
        assert container["args"] == ["bash", f"/opt/deep-storage/{METASTORE_SH.name}", command]
        assert re.search(rf"^{command}\)$", script, re.M), f"metastore.sh has no `{command}`"


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_the_metastore_reads_every_key_metastore_sh_requires_from_its_secret(kind):
    required = _required_by_metastore_sh()
    assert "METASTORE_DB_PASSWORD" in required, "metastore.sh's `: ${NAME:?` lines were not found"
    (container,) = _metastore_pod_specs()[kind]["containers"]
    assert "envFrom" not in container, "name each key: a missing one then stops the pod, named"
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for name in required:
        ref = from_secret.get(name)
        assert ref, f"{kind}: {name} (required by metastore.sh) is not read from a secret"
        assert (ref["name"], ref["key"]) == (METASTORE_SECRET, name)
        assert not ref.get("optional"), f"{kind}: {name} is required, not optional"
    # Only the metastore's own secret, key for key; an extra key only if metastore.sh defaults it.
    for name, ref in from_secret.items():
        assert (ref["name"], ref["key"]) == (METASTORE_SECRET, name)
        assert name in required or name in _defaulted_by_metastore_sh(), name
    # Every ${env.NAME} hive-site.xml reads is given to the pod or defaulted by metastore.sh.
    given = {e["name"] for e in container["env"]} | _defaulted_by_metastore_sh()
    values = [v.text or "" for v in ElementTree.parse(HIVE_SITE).iter("value")]
    read = {name for v in values for name in re.findall(r"\$\{env\.([A-Z_]+)\}", v)}
    assert read and read <= given, read - given


def test_the_server_and_its_schema_job_use_the_same_database():
    def secret_env(kind: str) -> list[dict]:
        (container,) = _metastore_pod_specs()[kind]["containers"]
        return [e for e in container["env"] if "valueFrom" in e]

    assert secret_env("Deployment") == secret_env("Job")


def test_no_manifest_holds_a_literal_password_or_key():
    secretish = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", re.I)

    def literal_envs(node):
        if isinstance(node, dict):
            if "name" in node and "value" in node and secretish.search(str(node["name"])):
                yield node["name"]
            for value in node.values():
                yield from literal_envs(value)
        elif isinstance(node, list):
            for value in node:
                yield from literal_envs(value)

    for doc in MANIFESTS:
        assert not list(literal_envs(doc)), f"{_key(doc)} holds a literal secret"
        assert doc["kind"] != "Secret", f"{_key(doc)}: secrets are created by hand"
    for key in _one("ConfigMap", SETTINGS)["data"]:
        assert not secretish.search(key), key


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_the_metastore_pods_run_as_the_images_user_read_only_without_a_token(kind):
    from deep_storage_kfp.pipelines.platform import CLUSTER

    uid, gid = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.M).groups()
    spec = _metastore_pod_specs()[kind]
    assert spec["automountServiceAccountToken"] is False, "it never calls the Kubernetes API"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (
        int(uid),
        int(gid),
    )
    assert [s["name"] for s in spec["imagePullSecrets"]] == [CLUSTER.pull_secret]
    # The pipeline's node pool and toleration (pipelines/platform.py).
    assert spec["nodeSelector"] == {CLUSTER.node_pool_key: CLUSTER.node_pool}
    assert spec["tolerations"] == [
        {
            "key": CLUSTER.taint_key,
            "operator": "Equal",
            "value": CLUSTER.taint_value,
            "effect": "NoSchedule",
        }
    ]
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    # The one writable folder: /tmp (the JVM's temporary files, the warehouse's placeholders).
    volumes = {v["name"]: v for v in spec["volumes"]}
    writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"]
    assert "emptyDir" in volumes[writable[0]["name"]]
    for mount in container["volumeMounts"]:
        assert mount in writable or "configMap" in volumes[mount["name"]], mount
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_the_servers_probes_check_its_thrift_port():
    (container,) = _metastore_pod_specs()["Deployment"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = int(env.get("HIVE_METASTORE_PORT") or 9083)  # metastore.sh's default
    assert _container_port(port) == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        target = container[probe]["tcpSocket"]["port"]
        assert _container_port(target) == port, probe


def test_the_server_logs_to_its_output_not_to_a_file():
    """Hive's default logging writes to /tmp/<user>/hive.log, which `kubectl logs` never shows;
    the server is pointed at the ConfigMap's console-only configuration instead."""
    spec = _metastore_pod_specs()["Deployment"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    (path,) = re.findall(r"-Dlog4j\.configurationFile=(\S+)", env["JAVA_TOOL_OPTIONS"])
    folder, file = path.rsplit("/", 1)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    logging = _one("ConfigMap", volume["configMap"]["name"])["data"][file]
    appenders = set(re.findall(r"^appender\.\w+\.type = (\w+)$", logging, re.M))
    assert appenders == {"Console"}
    assert re.search(r"^appender\.console\.target = SYSTEM_ERR$", logging, re.M)


def test_every_key_of_the_settings_reaches_its_tasks_from_the_optional_config_map():
    """A key of deep-storage-settings no task reads is dead; the ConfigMap is optional, so a
    cluster without it runs too. HIVE_METASTORE_URI reaches the catalog step alone: another
    step's Spark session would then be on the metastore, and a metastore that is down would
    fail it."""
    keys = set(_one("ConfigMap", SETTINGS)["data"])
    assert keys == {"PUSHGATEWAY_URL", "HIVE_METASTORE_URI"}
    read = set()
    for name, executor in _compiled_executors().items():
        (settings,) = [c for c in executor["configMapAsEnv"] if c["configMapName"] == SETTINGS]
        assert settings["optional"] is True, name
        given = {(k["configMapKey"], k["envVar"]) for k in settings["keyToEnv"]}
        wanted = keys if name == "exec-catalog-tables" else keys - {"HIVE_METASTORE_URI"}
        assert given == {(k, k) for k in wanted}, name
        read |= {k for k, _ in given}
    assert read == keys


def test_the_settings_uri_names_the_metastore_service_and_the_pipeline_may_reach_its_pods():
    from urllib.parse import urlsplit

    from deep_storage.core import config

    uri = _metastore_uri()
    assert config.metastore_uri(uri) == uri, "the catalog step must accept it"
    url = urlsplit(uri)
    service_name, namespace, *domain = url.hostname.split(".")
    assert domain == ["svc", "cluster", "local"]
    service = _one("Service", service_name)
    assert service["metadata"]["namespace"] == namespace
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    pod_port = _container_port(port["targetPort"])
    # The pipeline's egress, on the pod's port: once, to the Service's pods in this namespace.
    rules = _rules_with_port(pod_port)
    assert len(rules) == 1, f"port {pod_port} must be opened once, to the metastore only"
    (rule,) = rules
    assert _ports(rule) == {("TCP", pod_port)}
    (peer,) = rule["to"]
    assert peer == {"podSelector": {"matchLabels": service["spec"]["selector"]}}


def test_only_the_pipelines_pods_connect_in_to_the_metastore_and_nothing_to_its_job():
    (rule,) = _ingress_rules("metastore")
    ours = {
        "matchLabels": {"app.kubernetes.io/name": _pod_labels("pipeline")["app.kubernetes.io/name"]}
    }
    assert rule["from"] == [{"podSelector": ours}]
    port = _one("Service", METASTORE)["spec"]["ports"][0]["targetPort"]
    assert _ports(rule) == {("TCP", _container_port(port))}
    assert not _ingress_rules("schema")


def _properties(text: str) -> dict[str, str]:
    """A Java properties file as Trino reads it (only the `key=value` and `#` lines it uses)."""
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), pairs
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_trino_example_reads_the_metastore_service_and_takes_keys_from_the_environment():
    from deep_storage.core.config import STORE_ENV
    from demo.catalog_services import delta_catalog_properties

    props = _properties(TRINO_CATALOG.read_text())
    assert props["hive.metastore.uri"] == _metastore_uri()
    assert props["s3.aws-access-key"] == "${ENV:AWS_ACCESS_KEY_ID}"
    assert props["s3.aws-secret-key"] == "${ENV:AWS_SECRET_ACCESS_KEY}"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(STORE_ENV)
    assert props["s3.endpoint"].startswith("https://")
    # The properties the local Trino runs with (demo/catalog_services.py) but endpoint, region.
    assert props == _properties(
        delta_catalog_properties(_metastore_uri(), props["s3.endpoint"], props["s3.region"])
    )
    # An example for an existing Trino, not a resource of the kustomization.
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert not any("trino" in r for r in kustomization["resources"])


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
