"""Value and planning modules stay cheap to import: no YAML loader, schema validator,
HTTP client or Docker SDK until a command needs one (every command pays what its
imports cost, and the engine layer must not drag the configuration loader along)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("yaml", "jsonschema", "requests", "urllib3", "docker", "rich",
         "concurrent_log_handler", "junit_xml")


@pytest.mark.parametrize("module", ["orchestrator.engine", "orchestrator.plan",
                                    "orchestrator.jobs", "orchestrator.results",
                                    "orchestrator.config", "orchestrator.scheduler"])
def test_importing_loads_no_heavy_library(module: str) -> None:
    # a fresh interpreter: this test process has imported everything already
    code = (f"import sys, {module}; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == [], f"importing {module} loads {done.stdout.strip()}"


def test_the_check_can_fail() -> None:
    code = "import sys, orchestrator.engine.docker; print('docker' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "True"  # the engine implementations do load the SDK
