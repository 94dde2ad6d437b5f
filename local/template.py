"""SamTemplate: reads template.yaml so the local stack and the tests build what the template declares.

Routes (with their auth), the table, the queues, the secrets and each function's environment
come from the template itself; nothing here restates them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        key = "Ref" if name == "Ref" else f"Fn::{name}"
        return {key: value}

    return construct


for _name in (
    "Ref",
    "Sub",
    "GetAtt",
    "Join",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Select",
    "Split",
    "FindInMap",
    "ImportValue",
):
    _CfnLoader.add_constructor(f"!{_name}", _tag(_name))


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    code_uri: str
    handler: str
    authorized: bool

    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class StreamTrigger:
    table: str
    function: str
    batch_size: int
    patterns: list[dict[str, Any]]

    def matches(self, record: dict[str, Any]) -> bool:
        """Lambda's event filtering for the pattern forms the template uses (values, prefix, exists);
        no patterns: every record."""
        return not self.patterns or any(_matches(pattern, record) for pattern in self.patterns)


def _matches(pattern: dict[str, Any], value: Any) -> bool:
    """Every key of the pattern matches: a list holds the rules for a leaf, a dict goes one level down."""
    if not isinstance(value, dict):
        return False
    return all(
        _matches_rules(sub, value.get(key, _MISSING)) if isinstance(sub, list) else _matches(sub, value.get(key))
        for key, sub in pattern.items()
    )


_MISSING = object()


def _matches_rules(rules: list[Any], value: Any) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if (value is not _MISSING) == bool(rule["exists"]):
                return True
        elif isinstance(rule, dict) and "prefix" in rule:
            if isinstance(value, str) and value.startswith(rule["prefix"]):
                return True
        elif isinstance(rule, dict):
            raise ValueError(f"unsupported filter rule {rule!r}")
        elif value is not _MISSING and value == rule:
            return True
    return False


@dataclass(frozen=True)
class FunctionDef:
    logical_id: str
    code_uri: str
    handler: str
    environment: dict[str, Any]
    timeout: int = 3  # seconds, as Lambda's default
    memory_size: int = 128  # MB, as Lambda's default


class SamTemplate:
    def __init__(self, path: Path = TEMPLATE):
        self.path = path
        self.doc = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
        self.resources: dict[str, Any] = self.doc["Resources"]

    def of_type(self, cfn_type: str, parameters: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Resources of a type; given the parameters, only those whose ``Condition`` holds."""
        return {
            k: v
            for k, v in self.resources.items()
            if v["Type"] == cfn_type
            and (parameters is None or "Condition" not in v or self.condition(v["Condition"], parameters))
        }

    def condition(self, name: str, parameters: dict[str, Any]) -> bool:
        """A named condition of the template, evaluated for the given parameter values."""
        return bool(self._evaluate(self.doc["Conditions"][name], parameters))

    def _evaluate(self, expr: Any, parameters: dict[str, Any]) -> Any:
        if isinstance(expr, dict) and "Ref" in expr:
            return parameters.get(expr["Ref"], self.parameter_defaults().get(expr["Ref"]))
        if isinstance(expr, dict) and "Condition" in expr:
            return self.condition(expr["Condition"], parameters)
        if isinstance(expr, dict) and "Fn::Equals" in expr:
            left, right = (self._evaluate(x, parameters) for x in expr["Fn::Equals"])
            return str(left) == str(right)
        if isinstance(expr, dict) and "Fn::Not" in expr:
            return not self._evaluate(expr["Fn::Not"][0], parameters)
        if isinstance(expr, dict) and "Fn::And" in expr:
            return all(self._evaluate(x, parameters) for x in expr["Fn::And"])
        if isinstance(expr, dict) and "Fn::Or" in expr:
            return any(self._evaluate(x, parameters) for x in expr["Fn::Or"])
        if isinstance(expr, dict) and "Fn::Join" in expr:  # a list parameter joined, as in HasToolFunctions
            separator, items = expr["Fn::Join"]
            values = self._evaluate(items, parameters)
            return separator.join(str(v) for v in (values if isinstance(values, list) else [values]))
        return expr

    def parameter_defaults(self) -> dict[str, Any]:
        return {k: v.get("Default") for k, v in self.doc.get("Parameters", {}).items()}

    def function(self, logical_id: str) -> FunctionDef:
        props = self.resources[logical_id]["Properties"]
        env = dict(self.doc["Globals"]["Function"]["Environment"]["Variables"])
        env.update(props.get("Environment", {}).get("Variables", {}))
        timeout = props.get("Timeout", self.doc["Globals"]["Function"].get("Timeout", 3))
        memory = props.get("MemorySize", self.doc["Globals"]["Function"].get("MemorySize", 128))
        if isinstance(memory, dict) and "Ref" in memory:  # a parameter: its default
            memory = self.parameter_defaults()[memory["Ref"]]
        return FunctionDef(logical_id, props["CodeUri"], props["Handler"], env, int(timeout), int(memory))

    def architecture(self) -> str:
        """The functions' instruction set, as Globals give it (every function here uses the Globals')."""
        return str(self.doc["Globals"]["Function"].get("Architectures", ["x86_64"])[0])

    def functions(self) -> list[FunctionDef]:
        return [self.function(k) for k in self.of_type("AWS::Serverless::Function")]

    def default_authorizer(self) -> str | None:
        """The logical id of the function behind the HTTP API's default authorizer."""
        for api in self.of_type("AWS::Serverless::HttpApi").values():
            auth = api["Properties"].get("Auth", {})
            default = auth.get("DefaultAuthorizer")
            if default:
                arn = auth["Authorizers"][default]["FunctionArn"]
                return arn["Fn::GetAtt"][0]
        return None

    def http_routes(self) -> list[Route]:
        routes = []
        has_default_auth = self.default_authorizer() is not None
        for logical_id, fn in self.of_type("AWS::Serverless::Function").items():
            props = fn["Properties"]
            for event in (props.get("Events") or {}).values():
                if event["Type"] != "HttpApi":
                    continue
                ev = event["Properties"]
                authorizer = (ev.get("Auth") or {}).get("Authorizer")
                routes.append(
                    Route(
                        method=ev["Method"].upper(),
                        path=ev["Path"],
                        function=logical_id,
                        code_uri=props["CodeUri"],
                        handler=props["Handler"],
                        authorized=has_default_auth and authorizer != "NONE",
                    )
                )
        return routes

    def sqs_batch_size(self, function_id: str) -> int:
        """The ``BatchSize`` of a function's SQS trigger (10, SQS's default, when unset)."""
        for event in (self.resources[function_id]["Properties"].get("Events") or {}).values():
            if event["Type"] == "SQS":
                return int(event["Properties"].get("BatchSize", 10))
        return 10

    def sqs_max_concurrency(self, function_id: str, parameters: dict[str, Any]) -> int | None:
        """The ``ScalingConfig.MaximumConcurrency`` of a function's SQS trigger (a ``!Ref`` resolved
        against the parameters), or None when the trigger sets none."""
        for event in (self.resources[function_id]["Properties"].get("Events") or {}).values():
            if event["Type"] == "SQS":
                value = (event["Properties"].get("ScalingConfig") or {}).get("MaximumConcurrency")
                if isinstance(value, dict) and "Ref" in value:
                    value = parameters.get(value["Ref"], self.parameter_defaults().get(value["Ref"]))
                return int(value) if value is not None else None
        return None

    def sqs_triggers(self) -> dict[str, str]:
        """Queue logical id → the function it triggers."""
        triggers = {}
        for logical_id, fn in self.of_type("AWS::Serverless::Function").items():
            for event in (fn["Properties"].get("Events") or {}).values():
                if event["Type"] == "SQS":
                    triggers[event["Properties"]["Queue"]["Fn::GetAtt"][0]] = logical_id
        return triggers

    def stream_triggers(self) -> list[StreamTrigger]:
        """Every DynamoDB stream trigger: the table, the function, its batch size and filter patterns."""
        triggers = []
        for logical_id, fn in self.of_type("AWS::Serverless::Function").items():
            for event in (fn["Properties"].get("Events") or {}).values():
                if event["Type"] != "DynamoDB":
                    continue
                props = event["Properties"]
                patterns = [json.loads(f["Pattern"]) for f in (props.get("FilterCriteria") or {}).get("Filters", [])]
                triggers.append(
                    StreamTrigger(
                        props["Stream"]["Fn::GetAtt"][0], logical_id, int(props.get("BatchSize", 100)), patterns
                    )
                )
        return triggers

    def scheduled_functions(self) -> list[str]:
        return [
            logical_id
            for logical_id, fn in self.of_type("AWS::Serverless::Function").items()
            if any(e["Type"] in ("Schedule", "ScheduleV2") for e in (fn["Properties"].get("Events") or {}).values())
        ]
