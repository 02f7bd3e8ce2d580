"""The Dockerfiles tagmatrix writes, as pure text (the engine builds them).

- the **application template**: the official image's documented layer order
  (requirements first, then the code), for a folder without packaging metadata;
- the **project image** (one per engine and run): the project's files, its artifact
  built in a container by ``incontainer/artifact.py`` and what dependency layers need;
- the **cell image**, for the install flow: the cell's interpreter, then the test
  dependencies (a layer that stays cached while only code changes), then the
  project's artifact, then the project's files, all copied from the project image
  by its id (so two runs building the same folder at once never mix).

Every RUN uses the exec form (a JSON array): no shell quoting, and the same text on
Linux and Windows images.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from .jobs import DIST_DIR, INSTALL_DIR, WORKDIR, BuildSpec, ProjectBuild
from .settings import ProjectKind

# In the project image's build context (next to the project under project/).
TOOLS = ("artifact.py", "install.py")
BUILD_REQUIREMENT = "build>=1.2"  # pypa/build, the PEP 517 frontend artifact.py drives


@functools.cache
def tools() -> dict[str, bytes]:
    """The scripts that run inside containers, by name."""
    folder = Path(__file__).parent / "incontainer"  # files of the package (see tags.py)
    return {name: folder.joinpath(name).read_bytes() for name in TOOLS}


def _tools_digest() -> str:
    digest = hashlib.sha256()
    for name, body in sorted(tools().items()):
        digest.update(name.encode() + b"\0" + body)
    return digest.hexdigest()[:12]


TOOLS_DIGEST = _tools_digest()  # changes the project images' key when a script changes


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
    """The project image. Its context holds ``tools/`` (the scripts) and ``project/``."""
    args = json.dumps({"kind": str(spec.kind), "src": "/tagmatrix/src", "out": "/tagmatrix",
                       "requirements": list(spec.requirements)})
    lines = [f"FROM {spec.base_image}",
             "ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore"]
    if spec.kind is not ProjectKind.NONE:
        lines.append(_run("python", "-m", "pip", "install", "--no-cache-dir",
                          BUILD_REQUIREMENT))
    lines += ["COPY tools/artifact.py /tagmatrix/artifact.py",
              "COPY tools/install.py /tagmatrix/deps/install.py",
              "COPY project/ /tagmatrix/src/",
              _run("python", "/tagmatrix/artifact.py", args), ""]
    return "\n".join(lines)


def cell_dockerfile(spec: BuildSpec, project_image: str) -> str:
    """A cell's image in the install flow, copying from ``project_image`` (an image id)."""
    install = spec.install
    built = spec.project
    if install is None or built is None:
        raise ValueError("cell_dockerfile needs a build spec of the install flow")
    platform = built.platform
    here, dist, workdir = INSTALL_DIR[platform], DIST_DIR[platform], WORKDIR[platform]
    sep = "\\" if platform == "windows" else "/"
    script = f"{here}{sep}install.py"
    deps = {"stub": install.stub, "extras": list(install.extras),
            "requirements": list(install.requirements), "packages": list(install.packages),
            "groups": list(install.groups), "resolution": str(install.resolution)}
    lines = [f"FROM {spec.base_image}", f"WORKDIR {workdir}",
             f"COPY --from={project_image} /tagmatrix/deps/ {here}{sep}",
             _run("python", script, "deps", json.dumps(deps, sort_keys=True))]
    if install.kind in (ProjectKind.SDIST, ProjectKind.WHEEL):
        lines += [f"COPY --from={project_image} /tagmatrix/dist/ {dist}{sep}",
                  _run("python", script, "project",
                       json.dumps({"kind": str(install.kind), "dist": dist}))]
    lines.append(f"COPY --from={project_image} /tagmatrix/src/ {workdir}{sep}")
    if install.kind is ProjectKind.EDITABLE:
        lines.append(_run("python", script, "editable", json.dumps({"path": workdir})))
    lines.append("")
    return "\n".join(lines)
