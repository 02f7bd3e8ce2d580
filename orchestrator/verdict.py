"""How a finished container is judged: from its exit code, its JUnit and the
interpreter it proves it ran. Pure: no engine, no threads."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from .engine import Execution
from .engine.records import install_record
from .errors import Stage
from .jobs import PLANNED, Job
from .junit_in import InvalidResults, parse_junit
from .results import CellResult, Status, TestCase, TestCounts

log = logging.getLogger(__name__)

SETUP_FAILED_REASON = "the setup command failed (see the log)"


def job_result(job: Job, status: Status, reason: str, stage: Stage = Stage.NONE) -> CellResult:
    """A cell's result before (or without) running it. It says how the plan installs
    the project (the resolver's version and the project's requirements come once the
    image is built): an install that fails still shows its extras, groups and files."""
    return CellResult(
        id=job.id, python=job.cell.python, variant=job.cell.variant,
        axes=dict(job.cell.axes), image=job.base_image, platform=job.platform,
        status=status, reason=reason, stage=stage, gating=job.gating,
        install=install_record(job.install_step, None),
        log=f"logs/{job.id}.log" if job.state is PLANNED else "")


@dataclass(frozen=True)
class Verdict:
    """How a finished container is judged."""

    status: Status
    reason: str = ""
    stage: Stage = Stage.NONE  # for errors: run or results
    cases: tuple[TestCase, ...] = ()


# pytest's exit codes when it wrote no results (pytest.ExitCode): say what they mean
_PYTEST_EXIT = {2: " (pytest was interrupted)", 3: " (pytest's internal error)",
                4: " (pytest could not start: a usage error, or a conftest that does not "
                   "import)"}


def classify(job: Job, execution: Execution) -> Verdict:
    """The status of a finished container, from its exit code and its JUnit."""
    code = execution.exit_code
    if execution.cancelled:
        return Verdict(Status.CANCELLED, "cancelled while running; container killed",
                       Stage.RUN)
    if execution.timed_out:
        return Verdict(Status.TIMEOUT, f"exceeded the {job.timeout:g} s timeout; container "
                       "killed", Stage.RUN)
    if execution.setup_failed:
        return Verdict(Status.ERROR, SETUP_FAILED_REASON, Stage.RUN)
    if execution.oom_killed:
        return Verdict(Status.ERROR, "killed by the kernel: out of memory (OOMKilled)",
                       Stage.RUN)
    if code == 137:
        return Verdict(Status.ERROR, "killed by SIGKILL (exit 137; out of memory?)", Stage.RUN)
    cases: tuple[TestCase, ...] = ()
    if execution.junit is not None:
        try:
            cases = tuple(parse_junit(execution.junit))
        except InvalidResults as exc:
            return Verdict(Status.ERROR, f"results: {exc}", Stage.RESULTS)
    counts = TestCounts.of(cases)
    bad = counts.failed + counts.errors
    if code is None:
        return Verdict(Status.ERROR, "the container's exit code is unknown", Stage.RUN, cases)
    if job.junit_path and execution.junit is None:
        why = execution.junit_error or "no JUnit file"
        if code == 0:
            return Verdict(Status.ERROR, f"results missing: {why}", Stage.RESULTS)
        meaning = _PYTEST_EXIT.get(code, "") if job.pytest_junit else ""
        return Verdict(Status.FAILED, f"exit code {code}{meaning}; {why}")
    wrong = _wrong_interpreter(job, execution)
    if wrong:
        return Verdict(Status.ERROR, wrong, Stage.RESULTS, cases)
    if code == 0 and bad == 0:
        return Verdict(Status.PASSED, "", Stage.NONE, cases)
    if code == 0:
        return Verdict(Status.FAILED, f"{bad} test(s) failed although the command exited 0",
                       Stage.NONE, cases)
    if code == 5 and counts.total == 0:
        return Verdict(Status.FAILED, "no tests were collected (pytest exit 5)", Stage.NONE,
                       cases)
    detail = f"; {counts.failed} failed, {counts.errors} errors" if cases else ""
    return Verdict(Status.FAILED, f"exit code {code}{detail}", Stage.NONE, cases)


def _wrong_interpreter(job: Job, execution: Execution) -> str:
    """Why the cell cannot count: it ran another interpreter than its tag promises (a
    custom Dockerfile whose FROM ignores PYTHON_IMAGE, a mislabelled image); "" if fine."""
    if job.interpreter is None:
        return ""
    implementation = execution.interpreter.implementation
    if implementation not in ("", "CPython"):  # "": an older record; the version decides
        return (f"the image ran {implementation}, but the official python images hold "
                f"CPython: the image {job.base_image} is not what its tag names")
    verdict = job.interpreter.judge(execution.interpreter.version)
    if verdict.ok:
        if verdict.message:
            log.warning("cell %s: %s", job.id, verdict.message)
        return ""
    if job.build is not None and job.build.dockerfile:
        hint = (f": does {job.build.dockerfile}'s FROM use PYTHON_IMAGE "
                "(ARG PYTHON_IMAGE, FROM ${PYTHON_IMAGE})?")
    else:
        hint = f": the image {job.base_image} does not hold the interpreter its tag names"
    return verdict.message + hint


# a line that says what went wrong, before the last line of all ("no tests ran in 0.00s")
_TELLING = re.compile(r"^(ERROR\b|E\s|\w*(Error|Exception)\b|tagmatrix: cannot run)|"
                      r"No module named|command not found")
_NO_MODULE = re.compile(r"No module named '?([\w.]+)'?")


def telling_line(output: str) -> str:
    """The line of a command's output that says why it failed: the last error line
    (``ERROR: file or directory not found: x``, ``ModuleNotFoundError: ...``), else the
    last non-empty line; cut to 200 characters."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = next((line for line in reversed(lines) if _TELLING.search(line)),
                 lines[-1] if lines else "")
    return found[:200]


def without_results(job: Job, verdict: Verdict, code: int | None, output: str) -> Verdict:
    """A failed cell without per-test results, explained by what its command said; a
    test command that could not start at all (not found, its module not installed) is
    the cell's ``error`` pointing at test.command, not a test failure."""
    said = telling_line(output)
    if not said:
        return verdict
    command = list(job.command)
    module = command[2] if command[:2] in (["python", "-m"], ["python3", "-m"]) \
        and len(command) > 2 else ""
    missing = _NO_MODULE.search(said)
    if code == 127 or (code == 1 and module and missing and missing[1] == module):
        return Verdict(Status.ERROR, f"the test command did not start: {said} (check "
                       "test.command, and that install: provides what it runs)", Stage.RUN)
    return replace(verdict, reason=f"{verdict.reason}; it said: {said}")
