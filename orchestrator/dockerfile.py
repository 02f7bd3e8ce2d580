"""The Dockerfiles tagmatrix writes, as pure text (the engine builds them).

- the **application template**: the official image's documented layer order
  (requirements first, then the code), for a folder without packaging metadata;
- the **project image** (one per engine and run): the project's files, its artifact
  built in a container by ``incontainer/artifact.py`` and what dependency layers need;
- the **cell image**, for the install flow: the cell's interpreter, then the test
  dependencies (a layer that stays cached while only code changes), then the
  project's artifact, then the project's files, copied from the project image by its
  id (so two runs building the same folder at once never mix).

Trust: the project image runs the project's build backend (setup.py: the pull
request's code, as root) after tagmatrix's files are in it, so everything in it is
the project's data and none of it is tagmatrix's code. A cell copies from it only what
the project's build produced (the artifact, the metadata-only wheel, the requirements
files, the project's files); the installer each RUN executes comes from the cell
build's own context, copied again right before every RUN that uses it (an earlier
step may have run project code: a local requirement's or the sdist's setup.py), and
runs with ``python -I`` (no script folder, working folder or PYTHON* variable on its
import path). What a cell reports about its install (resolution, extras, groups) is
taken from the plan, not from the image (engine/records.py).

Every RUN uses the exec form (a JSON array): no shell quoting, and the same text on
Linux and Windows images.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from .jobs import DIST_DIR, INSTALL_DIR, TOOLS_DIR, WORKDIR, BuildSpec, ProjectBuild
from .settings import ProjectKind

PROJECT_TOOLS = ("artifact.py",)  # in the project image's context, beside project/
CELL_TOOLS = ("install.py",)  # in each cell's own context, under CELL_TOOLS_FOLDER
CELL_TOOLS_FOLDER = "tagmatrix"
BUILD_REQUIREMENT = "build>=1.2"  # pypa/build, the PEP 517 frontend artifact.py drives


@functools.cache
def tools() -> dict[str, bytes]:
    """The scripts that run inside containers, by name."""
    folder = Path(__file__).parent / "incontainer"  # files of the package (see tags.py)
    return {name: folder.joinpath(name).read_bytes() for name in (*PROJECT_TOOLS, *CELL_TOOLS)}


def _tools_digest(names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0" + tools()[name])
    return digest.hexdigest()[:12]


# in the build keys: a changed script gives new project images and cell images
PROJECT_TOOLS_DIGEST = _tools_digest(PROJECT_TOOLS)
CELL_TOOLS_DIGEST = _tools_digest(CELL_TOOLS)


def _run(*argv: str) -> str:
    return f"RUN {json.dumps(list(argv))}"


def builtin_template(base_image: str, has_requirements: bool) -> str:
    """The application template: the canonical layer order of the official image's docs."""
    lines = [f"FROM {base_image}", "WORKDIR /usr/src/app"]
    if has_requirements:
        # requirements first: editing the code does not invalidate this layer
        lines += ["COPY requirements.txt ./", "RUN pip install --no-cache-dir -r requirements.txt"]
    lines += ["COPY . .", ""]
    return "\n".join(lines)


def project_dockerfile(spec: ProjectBuild) -> str:
    """The project image. Its context holds ``tools/`` (artifact.py) and ``project/``."""
    args = json.dumps({"kind": str(spec.kind), "src": "/tagmatrix/src", "out": "/tagmatrix",
                       "requirements": list(spec.requirements)})
    lines = [f"FROM {spec.base_image}",
             "ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore"]
    if spec.kind is not ProjectKind.NONE:
        lines.append(_run("python", "-m", "pip", "install", "--no-cache-dir",
                          BUILD_REQUIREMENT))
    lines += ["COPY tools/artifact.py /tagmatrix/artifact.py",
              "COPY project/ /tagmatrix/src/",
              _run("python", "-I", "/tagmatrix/artifact.py", args), ""]
    return "\n".join(lines)


def cell_steps(spec: BuildSpec) -> dict[str, dict[str, object]]:
    """The arguments of each installer step of a cell, by step (``deps``, then
    ``project`` or ``editable``): files in the cell's context, not Dockerfile text (a
    long list of requirements would pass the engine's 64 KiB Dockerfile line)."""
    install, built = spec.install, spec.project
    if install is None or built is None:
        raise ValueError("cell_steps needs a build spec of the install flow")
    data = INSTALL_DIR[built.platform]
    steps: dict[str, dict[str, object]] = {"deps": {
        "data": data, "stub": install.stub, "extras": list(install.extras),
        "requirements": list(install.requirements), "packages": list(install.packages),
        "groups": list(install.groups), "resolution": str(install.resolution)}}
    if install.kind in (ProjectKind.SDIST, ProjectKind.WHEEL):
        steps["project"] = {"kind": str(install.kind), "dist": DIST_DIR[built.platform],
                            "data": data}
    elif install.kind is ProjectKind.EDITABLE:
        steps["editable"] = {"path": WORKDIR[built.platform]}
    return steps


def cell_context(spec: BuildSpec) -> dict[str, bytes]:
    """The files of a cell's build context besides its Dockerfile: tagmatrix's installer
    and each step's arguments, under CELL_TOOLS_FOLDER."""
    files = {f"{CELL_TOOLS_FOLDER}/{name}": tools()[name] for name in CELL_TOOLS}
    for step, args in cell_steps(spec).items():
        files[f"{CELL_TOOLS_FOLDER}/step-{step}.json"] = \
            (json.dumps(args, sort_keys=True) + "\n").encode()
    return files


def cell_dockerfile(spec: BuildSpec, project_image: str) -> str:
    """A cell's image in the install flow, copying the project's build products from
    ``project_image`` (an image id) and tagmatrix's installer from its own context."""
    steps = cell_steps(spec)
    assert spec.project is not None  # cell_steps checked it
    platform = spec.project.platform
    here, dist, workdir = INSTALL_DIR[platform], DIST_DIR[platform], WORKDIR[platform]
    tools_dir = TOOLS_DIR[platform]
    sep = "\\" if platform == "windows" else "/"
    script = f"{tools_dir}{sep}install.py"
    # copied again before every RUN: an earlier step may have run the project's code
    tools_copy = f"COPY {CELL_TOOLS_FOLDER}/ {tools_dir}{sep}"
    lines = [f"FROM {spec.base_image}", f"WORKDIR {workdir}",
             f"COPY --from={project_image} /tagmatrix/deps/ {here}{sep}",
             tools_copy, _run("python", "-I", script, "deps")]
    if "project" in steps:
        lines += [f"COPY --from={project_image} /tagmatrix/dist/ {dist}{sep}",
                  tools_copy, _run("python", "-I", script, "project")]
    lines.append(f"COPY --from={project_image} /tagmatrix/src/ {workdir}{sep}")
    if "editable" in steps:
        lines += [tools_copy, _run("python", "-I", script, "editable")]
    lines.append("")
    return "\n".join(lines)
