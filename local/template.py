"""SamTemplate: reads template.yaml so the local stack and the tests build what the template declares.

Routes (with their auth), the table, the queues, the secrets and each function's environment
come from the template itself; nothing here restates them.
"""

from __future__ import annotations

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
class FunctionDef:
    logical_id: str
    code_uri: str
    handler: str
    environment: dict[str, Any]
    timeout: int = 3  # seconds, as Lambda's default


class SamTemplate:
    def __init__(self, path: Path = TEMPLATE):
        self.path = path
        self.doc = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
        self.resources: dict[str, Any] = self.doc["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def parameter_defaults(self) -> dict[str, Any]:
        return {k: v.get("Default") for k, v in self.doc.get("Parameters", {}).items()}

    def function(self, logical_id: str) -> FunctionDef:
        props = self.resources[logical_id]["Properties"]
        env = dict(self.doc["Globals"]["Function"]["Environment"]["Variables"])
        env.update(props.get("Environment", {}).get("Variables", {}))
        timeout = props.get("Timeout", self.doc["Globals"]["Function"].get("Timeout", 3))
        return FunctionDef(logical_id, props["CodeUri"], props["Handler"], env, int(timeout))

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

    def sqs_triggers(self) -> dict[str, str]:
        """Queue logical id → the function it triggers."""
        triggers = {}
        for logical_id, fn in self.of_type("AWS::Serverless::Function").items():
            for event in (fn["Properties"].get("Events") or {}).values():
                if event["Type"] == "SQS":
                    triggers[event["Properties"]["Queue"]["Fn::GetAtt"][0]] = logical_id
        return triggers

    def scheduled_functions(self) -> list[str]:
        return [
            logical_id
            for logical_id, fn in self.of_type("AWS::Serverless::Function").items()
            if any(e["Type"] in ("Schedule", "ScheduleV2") for e in (fn["Properties"].get("Events") or {}).values())
        ]
