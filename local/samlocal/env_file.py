"""The env-vars file `sam local` takes (``--env-vars``): every function's variables, pointed at moto
and the emulators as a container reaches them.

`sam local` only lets the file set variables the template declares, which is why the template
declares ``AWS_ENDPOINT_URL`` (empty, so the real endpoints, when deployed). Every value that names
a host names the local services, never AWS, OpenAI or Handover.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from local.aws_resources import CreatedResources, function_environments
from local.template import SamTemplate

CONTAINER_HOST = "host.docker.internal"


def for_containers(url: str, host: str) -> str:
    """``url`` with a loopback host replaced by the one containers reach the machine at."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "0.0.0.0"):
        return url
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def env_vars(
    template: SamTemplate,
    created: CreatedResources,
    parameters: dict[str, Any],
    *,
    aws_url: str,
    openai_url: str,
    handover_url: str,
    public_api_url: str,
    host: str = CONTAINER_HOST,
) -> dict[str, dict[str, str]]:
    """``{function logical id: {variable: value}}`` for every function in the template."""
    overrides = {
        "AWS_ENDPOINT_URL": for_containers(aws_url, host),
        "OPENAI_BASE_URL": for_containers(openai_url, host),
        "HANDOVER_BASE_URL": for_containers(handover_url, host),
        # Handover (on this machine) calls back the API that `sam local start-api` serves here.
        "PUBLIC_API_URL": public_api_url,
    }
    environments = function_environments(template, created, parameters, overrides)
    for env in environments.values():
        if "WORK_QUEUE_URL" in env:
            env["WORK_QUEUE_URL"] = for_containers(env["WORK_QUEUE_URL"], host)
    return environments
