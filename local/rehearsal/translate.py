"""template.yaml as CloudFormation, by SAM's own translator.

The translator runs in the SAM CLI's venv (``make lint`` installs it in ``.tools/sam``): it pins
a pydantic the Lambda layer's does not accept, so it cannot share the project's venv. Code URIs
are replaced by an S3 artifact, as ``sam package`` leaves them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = "s3://signoff-artifacts/code.zip"

_TRANSLATE = """
import copy, json, sys
from samtranslator.translator.transform import transform
sys.path.insert(0, sys.argv[1])
from local.template import SamTemplate
doc = copy.deepcopy(SamTemplate().doc)
for resource in doc["Resources"].values():
    for key in ("CodeUri", "ContentUri"):
        if key in resource.get("Properties", {}):
            resource["Properties"][key] = sys.argv[2]
class NoManagedPolicies:  # the template names no managed policy itself; SAM adds ARNs directly
    def load(self):
        return {}
print(json.dumps(transform(doc, {}, NoManagedPolicies())))
"""


def sam_python() -> Path:
    return Path(os.environ.get("SIGNOFF_SAM_PYTHON", ROOT / ".tools" / "sam" / "bin" / "python"))


def translated_template() -> dict[str, Any]:
    python = sam_python()
    if not python.exists():
        raise FileNotFoundError(f"the SAM CLI venv is missing ({python}); `make lint` installs it")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": ""}
    done = subprocess.run(
        [str(python), "-c", _TRANSLATE, str(ROOT), ARTIFACT], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout)
