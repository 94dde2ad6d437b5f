"""Create one assistant per catalog agent and print its id (the Assistants API only).

    OPENAI_API_KEY=... [OPENAI_BASE_URL=...] [CATALOG_FILE=catalog.json] \
        python -m signoff.adapters.assistant_setup [--agent support]

Put the id in that agent's ``assistant_id`` in the catalog (or, for a single agent, deploy with
``OpenAIAssistantId=<id>``). As the guide advises, an assistant is made once and reused by id,
never on each request; each run still sends the agent's current instructions and tools.
"""

from __future__ import annotations

import argparse
import os

from openai import OpenAI

from signoff.adapters.openai_assistants import nested_function


def create_assistant(client: OpenAI, model: str, tools: list[dict], instructions: str = "", name: str = "") -> str:
    assistant = client.beta.assistants.create(
        name=f"Signoff {name}".strip(),
        instructions=instructions or "Use the tools to act; some calls are reviewed by a human first.",
        model=model,
        tools=[nested_function(t) for t in tools],
    )
    return assistant.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default=None, help="the catalog agent (default: the catalog's default agent)")
    args = parser.parse_args()
    from signoff import runtime

    setup = runtime.agent_setup_named(args.agent)
    client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL") or None)
    print(create_assistant(client, setup.model, setup.tools, setup.instructions, setup.name))


if __name__ == "__main__":
    main()
