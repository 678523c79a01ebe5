"""`make demo` keeps working: the demo script runs end to end and reports success."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "refserver" / "demo.py"


@pytest.mark.e2e
def test_demo_runs_end_to_end_and_leaves_nothing_behind():
    proc = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Logged in as demo@spec-kitty.test" in out
    assert "obtained a ws token (value not shown)" in out
    assert "Logged out of 2 sessions; stored credentials removed." in out
    assert "Switched to demo@spec-kitty.test" in out and "ci-bot@spec-kitty.test at " in out
    assert "no other output" in out and "doctor" in out
    assert "Logged out; stored credentials removed." in out
    assert "Login method:   device code" in out and "the server now refuses the old refresh token" in out
    assert "Demo finished: every step behaved as expected." in out
    assert "Traceback" not in out + proc.stderr
