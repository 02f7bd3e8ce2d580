"""JSON Schema for matrix.yaml: validation here, editor support via `tagmatrix schema`.

Types and allowed keys are checked by :mod:`jsonschema` against this schema;
:mod:`orchestrator.config` adds what a schema cannot say (tag grammar, the
YAML float trap, include/exclude keys) and turns every error into one line
with file, line, column and key path.
"""

from __future__ import annotations

from typing import Any

from .history.settings import SCHEMA as HISTORY_SCHEMA
from .settings import (
    ADDABLE_CAPABILITIES,
    DROPPED_CAPABILITIES,
    MAX_CELLS,
    MAX_PARALLEL,
    MAX_TIMEOUT,
)

_SCALAR = {"type": ["string", "number", "boolean"]}
_SIZE = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[kKmMgG]?[bB]?$"}  # settings.parse_size
_COMMAND = {
    "description": "A command: a string (split like a shell would) or a list of arguments.",
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ],
}
_SECRET = {
    "type": "object",
    "description": "A secret value: redacted in every log and report.",
    "properties": {
        "secret": {"type": "string", "minLength": 1,
                   "description": "The secret value itself (prefer from_env)."},
        "from_env": {"type": "string", "minLength": 1,
                     "description": "Name of a host environment variable holding the secret."},
    },
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
}
_ENV = {
    "type": "object",
    "description": "Environment variables for the test container.",
    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": {"oneOf": [_SCALAR, _SECRET]},
}
_TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT,
            "description": "Seconds (at most a week)."}
_AXIS = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": _SCALAR,
    "description": "The values of one matrix axis.",
}
_SELECTOR = {
    "description": "Chooses cells: {key: value-glob, ...}, 'key=glob[,key=glob]' or a glob "
                   "on cell ids.",
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "additionalProperties": _SCALAR, "minProperties": 1},
    ],
}

_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
_INSTALL_PROPERTIES: dict[str, Any] = {
    "extras": {**_NAMES, "description": "Extras of the project to install: .[tests]."},
    "groups": {**_NAMES, "description": "PEP 735 dependency groups of pyproject.toml "
                                        "(include-group is followed)."},
    "requirements": {**_NAMES, "description": "Requirements files (-r), relative to the "
                                              "project."},
    "packages": {**_NAMES, "description": "Further requirement strings, e.g. \"pytest>=8\"."},
    "resolution": {"enum": ["highest", "lowest-direct"],
                   "description": "highest (pip, default) or lowest-direct (uv: the lowest "
                                  "versions the project declares)."},
    "project": {"enum": ["auto", "sdist", "wheel", "editable", "none"],
                "description": "auto (default): a Python project is built once into an sdist "
                               "and installed in every cell; wheel, editable, or none."},
}
_INSTALL = {
    "type": "object",
    "additionalProperties": False,
    "description": "How the project and its test dependencies are installed in each cell.",
    "properties": _INSTALL_PROPERTIES,
}

_TOP_LEVEL: dict[str, Any] = {
    "project": {"type": "string", "description": "Build context, relative to this file."},
    "image": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "registry": {"type": "string", "minLength": 1,
                         "description": "Registry host[:port] of the python images."},
            "repository": {"type": "string", "minLength": 1},
            "pull": {"enum": ["missing", "always", "never"],
                     "description": "When to pull base images (default: missing)."},
            "check_tags": {"type": "boolean",
                           "description": "Skip cells whose tag the catalogue says is not "
                                          "published (default: true)."},
        },
    },
    "matrix": {
        "type": "object",
        "properties": {
            "python": {**_AXIS, "items": {"type": "string"},
                       "description": "Python versions: quoted, e.g. \"3.10\"."},
            "variant": {**_AXIS, "items": {"type": "string"}},
            "include": {
                "type": "array",
                "items": {
                    "type": "object",
                    "minProperties": 1,
                    "properties": {
                        "python": {"type": "string"},
                        "variant": {"type": "string"},
                        "timeout": _TIMEOUT,
                        "env": _ENV,
                        "command": _COMMAND,
                        "install": _INSTALL,
                    },
                    "additionalProperties": _SCALAR,
                },
            },
            "exclude": {
                "type": "array",
                "items": {"type": "object", "minProperties": 1,
                          "additionalProperties": _SCALAR},
            },
        },
        "additionalProperties": _AXIS,
    },
    "build": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "mode": {"enum": ["image", "mount"],
                     "description": "image: build FROM python:<tag>; mount: bind-mount the "
                                    "project into the official image."},
            "dockerfile": {"type": "string", "minLength": 1,
                           "description": "Relative to the project; gets build args "
                                          "PYTHON_IMAGE and PYTHON_TAG."},
            "args": {"type": "object", "additionalProperties": _SCALAR,
                     "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                     "description": "Build args for build.dockerfile (names are case-sensitive: "
                                    "axes are offered upper-case, as MATRIX_<AXIS> and <AXIS>)."},
            "timeout": _TIMEOUT,
            "setup": _COMMAND,
            "parallel": {"type": "integer", "minimum": 1, "maximum": MAX_PARALLEL,
                         "description": "Images built at once (default: as many as "
                                        "cells run at once)."},
            "max_context": {"oneOf": [{"type": "integer", "minimum": 1}, _SIZE],
                            "description": "The most file content a build context may "
                                           "hold: bytes, or a size like 500m or 4g "
                                           "(default 2g)."},
        },
    },
    "test": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "command": _COMMAND,
            "junit": {"type": "string", "minLength": 1,
                      "description": "Where the command writes JUnit inside the container."},
            "timeout": _TIMEOUT,
            "env": _ENV,
        },
    },
    "install": _INSTALL,
    "network": {"enum": ["bridge", "none"],
                "description": "The test containers' network: bridge (default; the package "
                               "index and the host's services on the bridge gateway are "
                               "reachable) or none (loopback only)."},
    "parallel": {"type": "integer", "minimum": 1, "maximum": MAX_PARALLEL},
    "max_cells": {"type": "integer", "minimum": 1, "maximum": 1_000_000,
                  "description": f"Refuse a matrix of more cells (default {MAX_CELLS})."},
    "engines": {
        "type": "object",
        "description": "Named engines; cells go to one of the right platform, or pinned by "
                       "selector. Default: the environment's Docker engine.",
        "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "if": {"properties": {"type": {"const": "swarm"}}},
            "then": {"required": ["registry"]},
            "properties": {
                "type": {"enum": ["docker", "swarm"]},
                "base_url": {"type": "string", "minLength": 1,
                             "description": "unix:///..., tcp://host:2376, ssh://... "
                                            "(default: DOCKER_HOST or the default socket)"},
                "context": {"type": "string", "minLength": 1,
                            "description": "A Docker CLI context to take the endpoint from."},
                "tls": {"oneOf": [
                    {"type": "boolean"},
                    {"type": "object", "additionalProperties": False, "properties": {
                        "ca_cert": {"type": "string"}, "client_cert": {"type": "string"},
                        "client_key": {"type": "string"}, "verify": {"type": "boolean"}}}]},
                "parallel": {"type": "integer", "minimum": 1, "maximum": MAX_PARALLEL},
                "registry": {"type": "string", "minLength": 1,
                             "description": "Swarm: where built images are pushed for the "
                                            "nodes."},
                "platform": {"enum": ["linux", "windows"],
                             "description": "What `tagmatrix plan` assumes; `run` asks the "
                                            "engine."},
                "cells": {"type": "array", "items": _SELECTOR, "minItems": 1,
                          "description": "Only these cells run here (and they run nowhere "
                                         "else)."},
            },
        },
    },
    "limits": {
        "type": "object",
        "additionalProperties": False,
        "description": "Resource limits of every test container.",
        "properties": {
            "memory": {"oneOf": [{"type": "integer", "minimum": 6291456}, _SIZE],
                "description": "Bytes, or a size like 512m or 4g (default 4g; no swap)."},
            "cpus": {"type": "number", "exclusiveMinimum": 0, "maximum": 1024,
                     "description": "CPUs (default: no limit)."},
            "cap_add": {"type": "array", "uniqueItems": True,
                        "items": {"enum": list(ADDABLE_CAPABILITIES)},
                        "description": "Capabilities to give the tests back (default: "
                                       + ", ".join(DROPPED_CAPABILITIES) + " are dropped)."},
            "pids": {"type": "integer", "minimum": 16, "maximum": 4_194_304,
                     "description": "Process limit (default 4096)."},
        },
    },
    "retries": {"type": "integer", "minimum": 0, "maximum": 10,
                "description": "Further attempts after an infrastructure error (rate limit, "
                               "engine connection); never after test failures. Default 2."},
    "logs": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "max_bytes": {"type": "integer", "minimum": 1024, "maximum": 64 * 1024**3,
                          "description": "Cap of each cell's log file; past it the file "
                                         "says so and further output is only counted "
                                         "(default 256 MiB)."},
        },
    },
    "allow_failure": {"type": "array", "items": _SELECTOR},
    **HISTORY_SCHEMA,  # history, quarantine, slowdown
}


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of matrix.yaml."""
    overlay = {"type": "object", "additionalProperties": False, "properties": _TOP_LEVEL}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/tagmatrix/tagmatrix/schema/matrix.json",
        "title": "tagmatrix matrix.yaml",
        "type": "object",
        "additionalProperties": False,
        "required": ["matrix"],
        "properties": {
            **_TOP_LEVEL,
            "profiles": {
                "type": "object",
                "description": "Named overlays of the top-level keys, chosen with --profile.",
                "additionalProperties": overlay,
            },
        },
    }
