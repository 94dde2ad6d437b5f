"""The make targets that talk to a running stack follow its port and key when they were moved, as
`make local` itself does (SIGNOFF_API_PORT, SIGNOFF_API_KEY); an explicit API= or KEY= wins."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands(*args: str, **env: str) -> str:
    done = subprocess.run(
        ["make", "-n", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_verify_receipts_and_replay_follow_the_stacks_port_and_key():
    out = _commands("verify-receipts", "replay", "POLICY=p.json", SIGNOFF_API_PORT="3999", SIGNOFF_API_KEY="abc")
    assert "--jwks http://127.0.0.1:3999/.well-known/jwks.json --api http://127.0.0.1:3999 --key abc" in out
    assert "local.replay p.json --api http://127.0.0.1:3999 --key abc" in out


def test_the_defaults_are_make_locals_and_an_explicit_api_wins():
    env = {k: v for k, v in os.environ.items() if k not in ("SIGNOFF_API_PORT", "SIGNOFF_API_KEY")}
    done = subprocess.run(
        ["make", "-n", "verify-receipts"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert "--api http://127.0.0.1:3000 --key local-dev-key" in done.stdout
    assert "--api https://x.example --key k" in _commands("verify-receipts", "API=https://x.example", "KEY=k")


def test_replay_says_what_is_wrong_instead_of_a_traceback(tmp_path, capsys):
    from local.replay import main

    assert main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read the candidate policy" in capsys.readouterr().err
    policy = tmp_path / "policy.json"
    policy.write_text("{}")
    assert main([str(policy), "--api", "http://127.0.0.1:9"]) == 2
    assert "nothing answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_each_test_tier_has_a_target_of_its_own_and_every_tier_is_one():
    """`make test-<tier>` runs that folder alone; every folder of tests/ with tests is a tier."""
    tiers = sorted(p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py")))
    for tier in tiers:
        assert f"pytest tests/{tier}" in _commands(f"test-{tier}"), tier
