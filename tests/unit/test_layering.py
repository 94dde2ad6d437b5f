"""The domain core stays free of AWS and OpenAI, and the callback path never imports openai."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "signoff" / "signoff"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_and_logic_import_neither_boto3_nor_openai():
    for folder in ("domain", "logic"):
        for path in (PACKAGE / folder).glob("*.py"):
            forbidden = _imports(path) & {"boto3", "botocore", "openai"}
            assert not forbidden, f"{path.relative_to(ROOT)} imports {forbidden}"


def test_domain_does_not_reach_into_adapters_or_dal():
    for path in (PACKAGE / "domain").glob("*.py"):
        source = path.read_text()
        assert "signoff.adapters" not in source and "signoff.dal" not in source, path


def test_use_cases_depend_on_the_store_protocols_not_on_dynamodb():
    for path in (PACKAGE / "logic").glob("*.py"):
        assert "signoff.dal" not in path.read_text(), f"{path.relative_to(ROOT)} reaches into the DAL"


def _modules_after_importing(handler_dir: str) -> set[str]:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('h', {str(ROOT / 'functions' / handler_dir / 'app.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    env = {"PYTHONPATH": str(ROOT / "layers" / "signoff"), "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(out.stdout.split())


def test_callback_and_client_api_cold_starts_do_not_import_openai():
    for handler in ("approval_callback", "client_api", "authorizer", "reconciler"):
        modules = _modules_after_importing(handler)
        assert "openai" not in modules, handler
        assert "signoff.runtime" in modules, handler  # the check looked at a real import
