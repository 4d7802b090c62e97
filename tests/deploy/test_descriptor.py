"""The xApp descriptor (config-file.json) and its controls schema (schema.json).

Validated the way the O-RAN SC onboarder (dms_cli onboard) validates: its draft-07 schema from
../shared/conformance with ``properties.controls`` replaced by schema.json, and ``name`` and
``version`` required. The xApp's own loader must read the same file without unknown keys, and
schema.json must describe exactly the loader's fields with the loader's defaults.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import DAPP_CHART, REPO, XAPP_CHART, DocumentedMetric, onboarder_validator

REQUIRED_RX = {"RIC_INDICATION", "RIC_SUB_RESP", "RIC_SUB_FAIL", "RIC_SUB_DEL_RESP"}
XAPP_PORTS = {"rmrdata": 4560, "rmrroute": 4561, "http": 8080}


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def descriptor() -> dict[str, Any]:
    return load_json(REPO / "config-file.json")


@pytest.fixture(scope="module")
def controls_schema() -> dict[str, Any]:
    return load_json(REPO / "schema.json")


def schema_defaults(schema: dict[str, Any]) -> Any:
    """The value a schema's defaults describe: ``default`` where given, else an object built from
    its properties' defaults."""
    if "default" in schema:
        return schema["default"]
    if schema.get("type") == "object":
        return {key: schema_defaults(sub) for key, sub in schema.get("properties", {}).items()
                if "default" in sub or sub.get("type") == "object"}
    raise AssertionError(f"schema without a default: {schema.get('description', schema)}")


def test_descriptor_passes_the_onboarder_schema(
        conformance_dir: Path, descriptor: dict[str, Any],
        controls_schema: dict[str, Any]) -> None:
    validator = onboarder_validator(conformance_dir)
    assert validator.schema["properties"]["controls"] == controls_schema
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(descriptor)]
    assert errors == []


def test_onboarder_quirks_are_met(descriptor: dict[str, Any]) -> None:
    registry = descriptor["containers"][0]["image"]["registry"]
    assert re.match(r"^[A-Za-z0-9.-]+\.[A-Za-z0-9]+(:\d+)?$", registry), registry
    assert isinstance(descriptor["metrics"], dict)
    for probe in ("livenessProbe", "readinessProbe"):
        assert all(isinstance(descriptor[probe][k], int)
                   for k in ("initialDelaySeconds", "periodSeconds"))


def test_name_and_version_match_the_project_and_charts(descriptor: dict[str, Any]) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", descriptor["name"])
    assert descriptor["version"] == version
    assert descriptor["containers"][0]["image"]["tag"] == version
    xapp_chart = yaml.safe_load((XAPP_CHART / "Chart.yaml").read_text())
    assert xapp_chart["name"] == descriptor["name"]
    for chart_dir in (XAPP_CHART, DAPP_CHART):
        chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        assert chart["appVersion"] == version and chart["version"] == version


def test_messaging_ports(descriptor: dict[str, Any]) -> None:
    ports = {p["name"]: p for p in descriptor["messaging"]["ports"]}
    assert {name: p["port"] for name, p in ports.items()} == XAPP_PORTS
    container = descriptor["containers"][0]["name"]
    assert all(p["container"] == container for p in ports.values())
    assert set(ports["rmrdata"]["rxMessages"]) >= REQUIRED_RX
    assert ports["rmrdata"]["txMessages"]


def test_descriptor_metrics_are_the_documented_xapp_metrics(
        descriptor: dict[str, Any], metrics_catalogue: dict[str, DocumentedMetric]) -> None:
    xapp_metrics = {n: m for n, m in metrics_catalogue.items() if n.startswith("kdran_xapp_")}
    assert set(descriptor["metrics"]) == set(xapp_metrics)
    for name, entry in descriptor["metrics"].items():
        assert entry["name"] == name and entry["type"] == xapp_metrics[name].kind


def test_schema_defaults_form_valid_controls(controls_schema: dict[str, Any]) -> None:
    """Every leaf has a default and a description, and the defaults alone validate."""
    def walk(schema: dict[str, Any], path: str, needs_default: bool) -> None:
        assert schema.get("description"), f"{path}: no description"
        properties = schema.get("properties", {})
        if needs_default and not properties:
            assert "default" in schema, f"{path}: no default"
        for key, sub in properties.items():
            assert re.match(r"^[a-z][a-z0-9_]*$", key), f"{path}.{key}: not snake_case"
            walk(sub, f"{path}.{key}", needs_default and "default" not in schema)

    walk(controls_schema, "controls", needs_default=True)
    jsonschema.Draft7Validator(controls_schema).validate(schema_defaults(controls_schema))


def test_xapp_loads_the_descriptor_without_unknown_keys() -> None:
    from xapp.config import load_controls

    controls, unknown = load_controls(REPO / "config-file.json")
    assert unknown == []
    assert controls.jobs.launcher == "k8s" and controls.http.port == XAPP_PORTS["http"]


def loader_tree(cls: type) -> dict[str, Any]:
    """Field name -> default (or nested tree for dataclass fields) of a loader dataclass."""
    hints = typing.get_type_hints(cls)
    tree: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            tree[field.name] = loader_tree(typing.cast(type, kind))
        elif field.default is not dataclasses.MISSING:
            tree[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
            tree[field.name] = (dataclasses.asdict(value) if dataclasses.is_dataclass(value)
                                else value)
    return tree


def test_schema_describes_exactly_the_loader_fields_and_defaults(
        controls_schema: dict[str, Any]) -> None:
    from xapp.config import Controls

    assert schema_defaults(controls_schema) == loader_tree(Controls)
