"""Create the Signoff assistant once and print its id (the Assistants API only).

    OPENAI_API_KEY=... [OPENAI_BASE_URL=...] python -m signoff.adapters.assistant_setup [--model gpt-4.1]

Then deploy with ``OpenAIAssistantId=<that id>``. As the guide advises, the assistant is made
once and reused by id, never on each request.
"""

from __future__ import annotations

import argparse
import os

from openai import OpenAI

from signoff.adapters.openai_assistants import nested_function
from signoff.config import DEFAULT_INSTRUCTIONS


def create_assistant(client: OpenAI, model: str, tools: list[dict]) -> str:
    assistant = client.beta.assistants.create(
        name="Signoff approval-gated assistant",
        instructions=DEFAULT_INSTRUCTIONS,
        model=model,
        tools=[nested_function(t) for t in tools],
    )
    return assistant.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4.1"))
    args = parser.parse_args()
    from signoff.tools.demo import build_demo_tools

    definitions = build_demo_tools(effects=None).definitions()  # type: ignore[arg-type]  # schemas only
    client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL") or None)
    print(create_assistant(client, args.model, definitions))


if __name__ == "__main__":
    main()
