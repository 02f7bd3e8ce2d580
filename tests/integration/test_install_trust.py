"""The install flow against a hostile build backend, on the real engine: a setup.py
that plants an installer in the project image and forges the install record in the
cell's image cannot make a cell run its installer or the reports lie; every build
step that runs project code gets the cells' memory limit (measured by a probe
setup.py in the project image and in a cell's build)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import REGISTRY, run_project
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.docker

SETUPTOOLS = ('[build-system]\nrequires = ["setuptools>=69"]\n'
              'build-backend = "setuptools.build_meta"\n')

# Runs in the project image (python -m build) and again in the cell (pip installs the
# sdist), as root, like any setup.py of a pull request.
HOSTILE_SETUP = '''
import json, os, pathlib
from setuptools import setup

FORGED = {"resolver": "uv 0.1.0 (lowest-direct)", "resolution": "lowest-direct",
          "extras": ["forged"], "groups": ["forged"],
          "project": {"name": "forged", "requires": []}}
# An installer of its own where the cells used to take tagmatrix's from.
deps = pathlib.Path("/tagmatrix/deps")
if deps.is_dir():
    (deps / "install.py").write_text(
        "import json, pathlib, subprocess, sys\\n"
        "pathlib.Path('/hostile-installer-ran').write_text('yes')\\n"
        "if sys.argv[1] == 'deps':\\n"
        "    subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'pytest'])\\n"
        "    (pathlib.Path(__file__).parent / 'record.json').write_text(json.dumps("
        + repr(FORGED) + "))\\n"
        "else:\\n"
        "    dist = pathlib.Path(json.loads(sys.argv[2])['dist'])\\n"
        "    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--no-deps', "
        "str(next(dist.glob('*.tar.gz')))])\\n")
# In a cell: the installer's record, rewritten after tagmatrix wrote it.
record = pathlib.Path("/tmp/tagmatrix-install/record.json")
if record.is_file():
    record.write_text(json.dumps(FORGED))
setup()
'''


@pytest.mark.parametrize("engine", [
    "{type: docker}",
    # a Swarm task brings the record back in a frame on stdout, not by copy-out
    pytest.param(f'{{type: swarm, registry: "{REGISTRY}"}}', marks=pytest.mark.swarm),
], ids=["docker", "swarm"])
def test_a_build_backend_can_neither_replace_the_installer_nor_forge_the_record(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        engine: str) -> None:
    root = workspace.folder()
    (root / "setup.py").write_text(HOSTILE_SETUP)
    (root / "pyproject.toml").write_text(
        SETUPTOOLS + '[project]\nname = "victim"\nversion = "1.0"\n'
        '[project.optional-dependencies]\ntests = ["pytest"]\n')
    (root / "victim.py").write_text("VALUE = 1\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_victim.py").write_text(textwrap.dedent("""
        import json, os

        def test_the_attack_happened_and_tagmatrix_installed_this_cell():
            # planted in the project image's /tagmatrix/deps by the build: discarded before
            # tagmatrix writes what the cells copy from there
            assert not os.path.exists("/tmp/tagmatrix-install/install.py")
            # forged by the sdist's setup.py in this cell's build
            with open("/tmp/tagmatrix-install/record.json") as f:
                assert json.load(f)["resolver"].startswith("uv ")
            assert not os.path.exists("/hostile-installer-ran")
    """))
    path = root / "matrix.yaml"
    path.write_text(f'image: {{registry: "{REGISTRY}"}}\n'
                    f'matrix: {{python: ["{lab_minors[-1]}"], variant: [slim]}}\n'
                    "install: {extras: [tests]}\n"
                    f"engines: {{here: {engine}}}\n"
                    "test: {command: python -m pytest -q tests, timeout: 300}\n")
    outcome = run_project(path, client=docker_client)
    (cell,) = outcome.cells().values()
    assert cell["status"] == "passed", cell["reason"]
    assert cell["tests"]["passed"] == 1
    install = cell["install"]
    assert install["resolution"] == "highest"
    assert install["resolver"] == "pip"  # the record names uv: its version is not taken
    assert install["extras"] == ["tests"]
    assert install["groups"] == []
    assert install["artifact"] == "victim-1.0.tar.gz"


# Measures, once per build (a marker file), what a build step may do.
PROBE_SETUP = '''
import json, os, socket, stat, subprocess, sys, threading
from setuptools import setup

MARK = "/tmp/tagmatrix-probe.json"
if not os.path.exists(MARK):
    out = {}
    code = subprocess.call([sys.executable, "-c",
        "b = bytearray(1024**3)\\nfor i in range(0, len(b), 4096): b[i] = 1"])
    out["memory_1GiB"] = "allocated" if code == 0 else f"exit {code}"
    stop, threads = threading.Event(), []
    try:
        for _ in range(600):
            t = threading.Thread(target=stop.wait)
            t.start()
            threads.append(t)
    except RuntimeError:
        pass
    stop.set()
    for t in threads:
        t.join()
    out["threads_of_600"] = len(threads)
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        out["net_raw"] = True
    except OSError:
        out["net_raw"] = False
    try:
        os.mknod("/tmp/tagmatrix-probe-null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        out["mknod"] = True
    except OSError:
        out["mknod"] = False
    import re
    index = re.search(r"index-url\\s*=\\s*\\w+://([^/:\\s]+):?(\\d*)", open("/etc/pip.conf").read())
    try:  # the package index the image is configured with (the lab's mirror)
        socket.create_connection((index[1], int(index[2] or 80)), timeout=5).close()
        out["index"] = True
    except OSError:
        out["index"] = False
    for key, name in (("memory", "memory/memory.limit_in_bytes"),
                      ("memsw", "memory/memory.memsw.limit_in_bytes")):
        try:
            out[key] = int(open("/sys/fs/cgroup/" + name).read())
        except (OSError, ValueError):
            out[key] = None
    with open(MARK, "w") as f:
        json.dump(out, f)
    print("TAGMATRIX-PROBE " + json.dumps(out), flush=True)
setup(name="probe", version="1.0", py_modules=[])
'''


def probe_of(text: str) -> dict[str, object]:
    found = re.search(r"TAGMATRIX-PROBE (\{.*\})", text)
    assert found, text[-3000:]
    data: dict[str, object] = json.loads(found[1])
    return data


def test_build_steps_get_the_cells_memory_limit(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    root = workspace.folder()
    (root / "setup.py").write_text(PROBE_SETUP)
    (root / "tests").mkdir()
    (root / "tests" / "test_probe.py").write_text(textwrap.dedent("""
        def test_show_the_cell_builds_probe():
            print("TAGMATRIX-PROBE " + open("/tmp/tagmatrix-probe.json").read())
    """))
    path = root / "matrix.yaml"
    path.write_text(f'image: {{registry: "{REGISTRY}"}}\n'
                    f'matrix: {{python: ["{lab_minors[-1]}"], variant: [slim]}}\n'
                    "install: {packages: [pytest]}\n"
                    "limits: {memory: 512m, pids: 256}\n"
                    "network: none\n"
                    "test: {command: python -m pytest -q -s tests, timeout: 300}\n")
    outcome = run_project(path, client=docker_client)
    logs: Path = outcome.reports / "logs"
    project = probe_of((logs / "_project.linux-sdist.log").read_text())
    cell = probe_of((logs / f"{lab_minors[-1]}-slim.log").read_text())
    limit = 512 * 1024**2
    for where, probe in (("project image", project), ("cell build", cell)):
        assert probe["memory"] == limit, (where, probe)
        assert probe["memory_1GiB"] in ("exit -9", "exit 137"), (where, probe)
        assert probe["memsw"] in (limit, None), (where, probe)  # None: no swap accounting
        with capsys.disabled():  # the figures the README's Security model quotes
            print(f"\n{where}: {json.dumps(probe, sort_keys=True)}")


# uv reads uv.toml (or pyproject.toml's [tool.uv]) in its working folder and the
# folders above it; the installer runs it among the project's requirements files.
PLANTING_SETUP = '''
import pathlib
from setuptools import setup

req = pathlib.Path("/tagmatrix/deps/req")
if req.is_dir():  # the project image: an index that answers nothing, where uv looks
    for folder in (req, req.parent):
        (folder / "uv.toml").write_text(
            '[[index]]\\nurl = "http://127.0.0.1:9/simple"\\ndefault = true\\n')
setup()
'''


def test_a_planted_uv_configuration_does_not_steer_a_min_cell(
        workspace: Workspace, docker_client: docker.DockerClient, lab_minors: list[str]) -> None:
    root = workspace.folder()
    (root / "setup.py").write_text(PLANTING_SETUP)
    (root / "pyproject.toml").write_text(
        SETUPTOOLS + '[project]\nname = "planted"\nversion = "1.0"\n'
        'dependencies = ["attrs>=22.1.0"]\n')
    (root / "tests").mkdir()
    (root / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n")
    path = root / "matrix.yaml"
    path.write_text(f'image: {{registry: "{REGISTRY}"}}\n'
                    f'matrix: {{python: ["{lab_minors[-1]}"], variant: [slim]}}\n'
                    'install: {packages: ["pytest>=8.0.0"], resolution: lowest-direct}\n'
                    "test: {command: python -m pytest -q tests, timeout: 300}\n")
    (cell,) = run_project(path, client=docker_client).cells().values()
    assert cell["status"] == "passed", cell["reason"]
    assert cell["packages"]["attrs"] == "22.1.0"
    assert cell["install"]["resolver"].startswith("uv ")
