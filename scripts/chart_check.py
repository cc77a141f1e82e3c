"""Offline checks of the Helm chart charts/palaver and its monitoring files.

Run by scripts/chart-check.sh with the venv of scripts/chart-tools.txt. Every check appends
to FAILURES instead of stopping, so one run reports everything that is wrong.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import promql_parser
import yaml

# The Kubernetes version the project targets (README: >= 1.33); kubernetes-validate ships 1.33.
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "palaver", "palaver-system"
SEVERITIES = {"critical", "warning", "info"}

ROOT = Path(sys.argv[1]).resolve()
CHART = ROOT / "charts/palaver"
FAILURES: list[str] = []


def fail(msg: str) -> None:
    FAILURES.append(msg)
    print(f"FAIL {msg}")


def ok(msg: str) -> None:
    print(f"ok   {msg}")


def crds_match_manifests() -> None:
    source = {p.name: p.read_bytes() for p in (ROOT / "crds/manifests").glob("*.yaml")}
    copied = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    if not source:
        fail("crds/manifests holds no *.yaml")
    for name in sorted(source.keys() | copied.keys()):
        if source.get(name) != copied.get(name):
            fail(f"charts/palaver/crds/{name} differs from crds/manifests/{name}: "
                 "rm charts/palaver/crds/*.yaml && cp crds/manifests/*.yaml charts/palaver/crds/")
    if source and source == copied:
        ok(f"chart crds/ equals crds/manifests ({len(source)} files)")


def lint(label: str, values: dict | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    problems = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    problems += report["errors"]
    for p in problems:
        fail(f"helm lint ({label}): {p}")
    if not problems:
        ok(f"helm lint --strict ({label})")


def render(chart: helm.Chart, label: str, values: dict | None) -> list[dict]:
    """Renders the chart as `helm install` would; returns its objects."""
    try:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        fail(f"render ({label}): {e}")
        return []
    objects = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        try:
            objects += [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as e:
            fail(f"render ({label}): {path} is not YAML: {e}")
    ok(f"render ({label}): {len(objects)} objects")
    return objects


def validate_builtin(label: str, obj: dict) -> None:
    what = f"{label}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        # strict: unknown fields are errors (a typo would otherwise be dropped by the API server).
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        fail(f"{what} invalid for Kubernetes {KUBE_VERSION}: {path}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        fail(f"{what}: {e.message}")


def promql(where: str, expr: str) -> None:
    try:
        promql_parser.parse(expr)
    except ValueError as e:
        fail(f"{where}: PromQL does not parse: {e}: {expr.strip()}")


def check_rule_groups(where: str, groups: object, runbook_prefix: str = "") -> int:
    """The shape Prometheus and the Prometheus Operator accept, plus our annotation rules."""
    if not isinstance(groups, list) or not groups:
        fail(f"{where}: groups must be a non-empty list")
        return 0
    anchors = runbook_anchors()
    alerts = 0
    seen: set[str] = set()
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not isinstance(g.get("rules"), list):
            fail(f"{where}: a group needs a name and a rules list: {g!r:.80}")
            continue
        for r in g["rules"]:
            name = r.get("alert")
            if not isinstance(name, str) or not isinstance(r.get("expr"), str):
                fail(f"{where}: every rule needs alert and expr: {r!r:.80}")
                continue
            alerts += 1
            w = f"{where}: {name}"
            if name in seen:
                fail(f"{w}: duplicate alert")
            seen.add(name)
            promql(w, r["expr"])
            if "for" in r:
                try:
                    promql_parser.parse_duration(r["for"])
                except ValueError:
                    fail(f"{w}: bad for: {r['for']!r}")
            if r.get("labels", {}).get("severity") not in SEVERITIES:
                fail(f"{w}: labels.severity must be one of {sorted(SEVERITIES)}")
            ann = r.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                if not isinstance(ann.get(key), str) or not ann[key].strip():
                    fail(f"{w}: annotations.{key} missing")
            want = f"{runbook_prefix}docs/runbooks.md#{name.lower()}"
            if ann.get("runbook_url") != want:
                fail(f"{w}: runbook_url is {ann.get('runbook_url')!r}, want {want!r}")
            if name.lower() not in anchors:
                fail(f"{w}: docs/runbooks.md has no section '## {name}'")
    return alerts


_anchors: set[str] | None = None


def runbook_anchors() -> set[str]:
    """GitHub's heading anchors of docs/runbooks.md (lowercase, punctuation dropped, - for space)."""
    global _anchors
    if _anchors is None:
        text = (ROOT / "docs/runbooks.md").read_text()
        heads = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)
        _anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}
    return _anchors


def alert_files() -> dict[str, list]:
    files = {}
    for path in sorted((CHART / "files/alerts").glob("*.rules.yaml")):
        rel = path.relative_to(ROOT)
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            fail(f"{rel}: not YAML: {e}")
            continue
        if not isinstance(doc, dict) or set(doc) != {"groups"}:
            fail(f"{rel}: must be a rules document with only `groups`")
            continue
        n = check_rule_groups(str(rel), doc["groups"])
        ok(f"{rel}: {n} alerts")
        files[path.name] = doc["groups"]
    if set(files) != {"palaver-dataplane.rules.yaml", "palaver-operator.rules.yaml"}:
        fail(f"files/alerts: expected the dataplane and operator rules, found {sorted(files)}")
    return files


def dashboard_files() -> dict[str, dict]:
    boards = {}
    for path in sorted((CHART / "files/dashboards").glob("*.json")):
        rel = path.relative_to(ROOT)
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            fail(f"{rel}: not JSON: {e}")
            continue
        variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        if variables.get("datasource", {}).get("query") != "prometheus":
            fail(f"{rel}: needs a datasource variable of type prometheus")
        if not isinstance(d.get("uid"), str) or not d.get("title") or d.get("schemaVersion", 0) < 36:
            fail(f"{rel}: needs uid, title and a current schemaVersion")
        exprs = 0
        for p in d.get("panels", []):
            if p.get("type") == "row":
                continue
            for t in p.get("targets", []):
                exprs += 1
                where = f"{rel}: panel '{p.get('title')}'"
                if t.get("datasource", {}).get("uid") != "${datasource}" or p.get("datasource", {}).get("uid") != "${datasource}":
                    fail(f"{where}: datasource must be ${{datasource}}")
                # Grafana's variables are not PromQL: a range and a plain value stand in for them.
                expr = t.get("expr", "").replace("$__rate_interval", "5m")
                promql(where, re.sub(r"\$\{?\w+\}?", "x", expr))
        for v in variables.values():
            if v.get("type") == "query":
                q = v.get("definition", "")
                m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
                if not m:
                    fail(f"{rel}: variable {v.get('name')}: expected label_values(selector, label), got {q!r}")
                else:
                    promql(f"{rel}: variable {v.get('name')}", re.sub(r"\$\{?\w+\}?", "x", m.group(1)))
        if exprs == 0:
            fail(f"{rel}: no queries")
        ok(f"{rel}: {exprs} queries")
        boards[path.name] = d
    if set(boards) != {"palaver-dataplane.json", "palaver-operator.json"}:
        fail(f"files/dashboards: expected the dataplane and operator dashboards, found {sorted(boards)}")
    return boards


def check_objects(label: str, objects: list[dict], values: dict, rules: dict, boards: dict) -> None:
    kinds: dict[str, int] = {}
    for obj in objects:
        kinds[obj.get("kind", "?")] = kinds.get(obj.get("kind", "?"), 0) + 1
        what = f"{label}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            # No schema ships for the Prometheus Operator's kinds: check what we rely on.
            if obj.get("apiVersion") != "monitoring.coreos.com/v1" or obj.get("kind") not in ("ServiceMonitor", "PrometheusRule"):
                fail(f"{what}: unexpected {obj.get('apiVersion')} kind")
            if not obj.get("metadata", {}).get("name") or not isinstance(obj.get("spec"), dict):
                fail(f"{what}: needs metadata.name and spec")
            elif obj["kind"] == "PrometheusRule":
                check_prometheus_rule(what, obj, values, rules)
            elif not obj["spec"].get("endpoints") or not obj["spec"].get("selector"):
                fail(f"{what}: needs spec.selector and spec.endpoints")
        else:
            validate_builtin(label, obj)
        if obj.get("kind") == "ConfigMap" and obj.get("metadata", {}).get("labels", {}).get("grafana_dashboard") == "1":
            for key, text in obj.get("data", {}).items():
                if key not in boards or json.loads(text) != boards[key]:
                    fail(f"{what}: data.{key} is not files/dashboards/{key}")
    want = {"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
            "Deployment": 1, "Service": 1}
    if values.get("metrics", {}).get("serviceMonitor", {}).get("enabled"):
        want["ServiceMonitor"] = 1
    if values.get("alerts", {}).get("enabled"):
        want["PrometheusRule"] = 1
    if values.get("dashboards", {}).get("enabled"):
        want["ConfigMap"] = len(boards)
    if kinds != want:
        fail(f"{label}: rendered kinds {kinds}, want {want}")
    else:
        ok(f"{label}: every object valid for Kubernetes {KUBE_VERSION} ({sum(kinds.values())} objects)")


def check_prometheus_rule(what: str, obj: dict, values: dict, rules: dict) -> None:
    alerts = values.get("alerts", {})
    prefix = alerts.get("runbookBaseUrl", "")
    groups = obj["spec"].get("groups")
    check_rule_groups(what, groups, runbook_prefix=prefix)
    # The rendered groups are the files' groups, only the runbook links prefixed.
    want = json.loads(json.dumps(rules.get("palaver-operator.rules.yaml", [])
                                 + (rules.get("palaver-dataplane.rules.yaml", []) if alerts.get("dataplane") else [])))
    for g in want:
        for r in g["rules"]:
            r["annotations"]["runbook_url"] = prefix + r["annotations"]["runbook_url"]
    if groups != want:
        fail(f"{what}: spec.groups differ from files/alerts")


def schema_rejects(chart: helm.Chart) -> None:
    """values.schema.json must keep bad values out (each case must fail, or the check is blind)."""
    bad = {
        "replicaCount: 0": {"replicaCount": 0},
        "replicaCount: '2'": {"replicaCount": "2"},
        "image.repository: 5": {"image": {"repository": 5}},
        "image.repository with a tag": {"image": {"repository": "palaver/palaver-operator:1.0"}},
        "logFormat: xml": {"logFormat": "xml"},
        "unknown key": {"replicas": 2},
        "alerts.dataplane: 'yes'": {"alerts": {"dataplane": "yes"}},
    }
    for label, values in bad.items():
        try:
            chart.validate_schema(chart.merge_values(values))
        except helm.HelmValuesError:
            continue
        fail(f"values.schema.json accepts bad values ({label})")
    # And so does `helm install`, which renders only after validating.
    try:
        chart.render({"replicaCount": 0}, name=RELEASE, namespace=NAMESPACE, is_install=True)
        fail("render accepted replicaCount: 0")
    except helm.HelmValuesError:
        pass
    report = helm.lint(CHART, {"replicaCount": 0}, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    if not report["errors"] and not any(m["severity"] >= 3 for m in report["messages"]):
        fail("helm lint accepted replicaCount: 0")
    ok(f"values.schema.json rejects {len(bad)} bad values files")


def main() -> int:
    crds_match_manifests()
    rules = alert_files()
    boards = dashboard_files()
    with helm.Chart.load(CHART) as chart:
        for crd in chart.crds:
            for obj in yaml.safe_load_all(crd["data"]):
                validate_builtin(f"crds/{crd['filename']}", obj)
        ok(f"chart crds/ valid CustomResourceDefinitions ({len(chart.crds)})")
        all_on = yaml.safe_load((CHART / "ci/all-on-values.yaml").read_text())
        for label, values in (("default values", None), ("ci/all-on-values.yaml", all_on)):
            lint(label, values)
            merged = chart.merge_values(values)
            check_objects(label, render(chart, label, values), merged, rules, boards)
        schema_rejects(chart)
    if FAILURES:
        print(f"chart check: {len(FAILURES)} problem(s)")
        return 1
    print("chart check: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
