"""Offline checks of the Helm chart charts/palaver and its monitoring files.

Run by scripts/chart-check.sh with the venv of scripts/chart-tools.txt, and the helm and promtool
binaries of `make deps-test` (their paths in HELM and PROMTOOL). Every check appends to FAILURES
instead of stopping, so one run reports everything that is wrong.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import promql_parser
import yaml

# The Kubernetes version the project targets (README: >= 1.33); kubernetes-validate ships 1.33.
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "palaver", "palaver-system"
SEVERITIES = {"critical", "warning", "info"}

ROOT = Path(sys.argv[1]).resolve()
CHART = ROOT / "charts/palaver"
ALERTS = CHART / "files/alerts"
HELM = os.environ["HELM"]
PROMTOOL = os.environ["PROMTOOL"]
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


def run(*cmd: str) -> subprocess.CompletedProcess:
    # No cluster: helm only renders; KUBECONFIG pointed nowhere so no real one is read.
    env = dict(os.environ, KUBECONFIG=os.devnull, HELM_NAMESPACE=NAMESPACE)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def values_args(values_file: Path | None) -> list[str]:
    return ["--values", str(values_file)] if values_file else []


def lint(label: str, values_file: Path | None) -> None:
    p = run(HELM, "lint", "--strict", "--kube-version", KUBE_VERSION, *values_args(values_file), str(CHART))
    # --strict: a warning fails the lint too. [INFO] lines are advice (an icon, say).
    problems = [line.strip() for line in p.stdout.splitlines() if line.lstrip().startswith(("[ERROR]", "[WARNING]"))]
    if p.returncode != 0 and not problems:
        problems = [(p.stderr or p.stdout).strip() or f"exit status {p.returncode}"]
    for problem in problems:
        fail(f"helm lint --strict ({label}): {problem}")
    if not problems:
        ok(f"helm lint --strict ({label})")


def helm_template(values_file: Path | None) -> subprocess.CompletedProcess:
    """`helm template` as `helm install` would render (CRDs are not templates: see main)."""
    return run(HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
               "--kube-version", KUBE_VERSION, *values_args(values_file))


def render(label: str, values_file: Path | None) -> list[dict]:
    """Renders the chart as `helm install` would; returns its objects."""
    p = helm_template(values_file)
    if p.returncode != 0:
        fail(f"helm template ({label}): {p.stderr.strip()}")
        return []
    try:
        objects = [d for d in yaml.safe_load_all(p.stdout) if d]
    except yaml.YAMLError as e:
        fail(f"helm template ({label}): output is not YAML: {e}")
        return []
    ok(f"helm template ({label}): {len(objects)} objects")
    return objects


def merged_values(values_file: Path | None) -> dict:
    """The chart's values with values_file over them, merged as Helm does (maps deep, the rest replaced)."""
    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
            elif isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = merge(out[k], v)
            else:
                out[k] = v
        return out
    base = yaml.safe_load((CHART / "values.yaml").read_text()) or {}
    return merge(base, yaml.safe_load(values_file.read_text()) or {}) if values_file else base


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


def schema_rejects(tmp: Path) -> None:
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
    for i, (label, values) in enumerate(bad.items()):
        f = tmp / f"bad-{i}.yaml"
        f.write_text(yaml.safe_dump(values))
        # helm install validates the values against the schema before rendering: so does template.
        p = helm_template(f)
        if p.returncode == 0:
            fail(f"values.schema.json accepts bad values ({label}): helm template rendered them")
        elif "schema" not in p.stderr:
            fail(f"helm template rejected bad values ({label}), but not by the schema: {p.stderr.strip()}")
    f = tmp / "bad-0.yaml"
    if run(HELM, "lint", "--strict", "--kube-version", KUBE_VERSION, "--values", str(f), str(CHART)).returncode == 0:
        fail("helm lint accepted replicaCount: 0")
    ok(f"values.schema.json rejects {len(bad)} bad values files (helm template and lint)")


def promtool_rules(rules: dict[str, list]) -> None:
    """promtool check rules on every rules file, then its unit tests (tests/*.test.yaml), and
    that those tests make every alert fire once and stay quiet once."""
    files = sorted(ALERTS.glob("*.rules.yaml"))
    p = run(PROMTOOL, "check", "rules", *map(str, files))
    if p.returncode != 0:
        fail(f"promtool check rules: {(p.stdout + p.stderr).strip()}")
    else:
        ok(f"promtool check rules ({len(files)} files)")
    tests = sorted((ALERTS / "tests").glob("*.test.yaml"))
    p = run(PROMTOOL, "test", "rules", *map(str, tests))
    if p.returncode != 0:
        fail(f"promtool test rules:\n{(p.stdout + p.stderr).strip()}")
    else:
        ok(f"promtool test rules ({len(tests)} files)")
    # Which alerts the tests drive into firing and which they check stay quiet.
    fires: dict[str, set[str]] = {}
    quiet: dict[str, set[str]] = {}
    for t in tests:
        doc = yaml.safe_load(t.read_text()) or {}
        covered = {Path(f).name for f in doc.get("rule_files", [])}
        for case in doc.get("tests", []):
            for a in case.get("alert_rule_test", []):
                target = fires if a.get("exp_alerts") else quiet
                for f in covered:
                    target.setdefault(f, set()).add(a.get("alertname"))
    for name, groups in sorted(rules.items()):
        alerts = [r["alert"] for g in groups for r in g.get("rules", []) if "alert" in r]
        for a in alerts:
            if a not in fires.get(name, set()):
                fail(f"files/alerts/tests: no promtool test makes {a} ({name}) fire")
            if a not in quiet.get(name, set()):
                fail(f"files/alerts/tests: no promtool test checks {a} ({name}) stays quiet")
        ok(f"{name}: each of its {len(alerts)} alerts has a firing and a quiet unit test")


def main() -> int:
    crds_match_manifests()
    rules = alert_files()
    promtool_rules(rules)
    boards = dashboard_files()
    # The CRDs as `helm install` sends them (crds/ is not templated). Not `helm show crds`: it
    # concatenates the files without a document separator.
    p = run(HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
            "--include-crds")
    if p.returncode != 0:
        fail(f"helm template --include-crds: {p.stderr.strip()}")
    else:
        crds = [d for d in yaml.safe_load_all(p.stdout) if d and d.get("kind") == "CustomResourceDefinition"]
        for obj in crds:
            validate_builtin("helm template --include-crds", obj)
        files = len(list((CHART / "crds").glob("*.yaml")))
        if len(crds) != files:
            fail(f"helm template --include-crds gives {len(crds)} CustomResourceDefinitions, chart crds/ has {files} files")
        ok(f"chart crds/ valid CustomResourceDefinitions ({len(crds)})")
    for label, values_file in (("default values", None), ("ci/all-on-values.yaml", CHART / "ci/all-on-values.yaml")):
        lint(label, values_file)
        check_objects(label, render(label, values_file), merged_values(values_file), rules, boards)
    with tempfile.TemporaryDirectory(prefix="palaver-chart-check-") as tmp:
        schema_rejects(Path(tmp))
    if FAILURES:
        print(f"chart check: {len(FAILURES)} problem(s)")
        return 1
    print("chart check: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
