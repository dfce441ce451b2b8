"""Nox sessions: one test session per package, the cross-package suite, lint.

    nox                      # lint + every package's tests + the integration tests
    nox -s "tests(microvlm-encoders)"
    nox -s all               # the whole suite in one environment (quickest locally)
    nox -s lint
    nox -s bench             # benchmarks against transformers' BLIP-2 (not in the default run)

Each package's session installs that package and microvlm-core only, so a dependency a
package forgot to declare fails there. Torch (several GB) is installed once into
``.nox/_torch`` and shared: every session environment gets a ``.pth`` file that puts that
environment's site-packages on ``sys.path``, so pip sees torch as installed and does not
fetch it again. Everything else is installed per session.
"""

from __future__ import annotations

import subprocess
import sys
from enum import Enum
from pathlib import Path

import nox

ROOT = Path(__file__).parent
TORCH_ENV = ROOT / ".nox" / "_torch"
TORCH_REQUIREMENTS = ("torch>=2.4", "torchvision>=0.19")
FIXTURE_PLUGINS = (
    "tests/plugins/microvlm-toy-plugin",
    "tests/plugins/microvlm-broken-plugin",
    "tests/plugins/microvlm-toy-exporter",
)
PYTEST_NO_TESTS = 5  # pytest's exit code when it collected nothing

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests", "integration"]


class Package(str, Enum):  # StrEnum needs Python 3.11; this works on 3.10 as well
    """Our distributions, listed once."""

    CORE = "microvlm-core"
    ENCODERS = "microvlm-encoders"
    QUANT = "microvlm-quant"
    DATASETS = "microvlm-datasets"
    TASKS = "microvlm-tasks"

    def __str__(self) -> str:
        return self.value

    @property
    def path(self) -> str:
        return f"packages/{self.value}"

    @property
    def with_extras(self) -> str:
        """The path with the optional extras the cross-package sessions install (their tests
        skip in the package's own session without them): pyarrow for RefCOCO's parquet files,
        img2dataset for the web-image downloads (tests/test_download_web_img2dataset.py)."""
        return f"{self.path}[parquet,web]" if self is Package.DATASETS else self.path


def _python_of(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _site_packages(python: str | Path) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.check_output([str(python), "-c", code], text=True).strip()


def share_torch(session: nox.Session) -> None:
    """Make the shared torch environment visible to this session's environment."""
    session_python = Path(session.bin) / ("python.exe" if sys.platform == "win32" else "python")
    base = subprocess.check_output(
        [str(session_python), "-c", "import sys; print(sys._base_executable)"], text=True
    ).strip()
    marker = TORCH_ENV / "base-python.txt"
    if not _python_of(TORCH_ENV).exists() or marker.read_text().strip() != base:
        session.log(f"creating the shared torch environment {TORCH_ENV}")
        session.run(base, "-m", "venv", "--clear", str(TORCH_ENV), external=True)
        session.run(
            str(_python_of(TORCH_ENV)), "-m", "pip", "install", "-q", *TORCH_REQUIREMENTS, external=True
        )
        marker.write_text(base + "\n")
    pth = Path(_site_packages(session_python)) / "_microvlm_shared_torch.pth"
    pth.write_text(_site_packages(_python_of(TORCH_ENV)) + "\n")


def install(session: nox.Session, *paths: str) -> None:
    share_torch(session)
    args = [arg for p in paths for arg in ("-e", p)]
    session.install(*args, "pytest>=8", "hypothesis>=6.100")


def pytest(session: nox.Session, *paths: str) -> None:
    missing = [p for p in paths if not (ROOT / p).exists()]
    if missing:
        session.error(f"no tests at {', '.join(missing)}")
    session.run("pytest", *paths, *session.posargs, success_codes=[0, PYTEST_NO_TESTS])


@nox.session
@nox.parametrize("package", [p.value for p in Package], ids=[p.value for p in Package])
def tests(session: nox.Session, package: str) -> None:
    """One package's tests, with only that package and microvlm-core installed."""
    package = Package(package)
    paths = [Package.CORE.path] if package is Package.CORE else [Package.CORE.path, package.path]
    install(session, *paths)
    pytest(session, f"{package.path}/tests")


@nox.session
def integration(session: nox.Session) -> None:
    """Cross-package tests (tests/): every package plus the third-party fixture plugins."""
    install(session, *(p.with_extras for p in Package), *FIXTURE_PLUGINS)
    pytest(session, "tests")


@nox.session(name="all")
def all_tests(session: nox.Session) -> None:
    """The whole suite in one environment."""
    install(session, *(p.with_extras for p in Package), *FIXTURE_PLUGINS)
    pytest(session)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against transformers' BLIP-2 (benchmarks/; not run by default, not tests).

    Small sizes by default; arguments after ``--`` go to every script, e.g.
    ``nox -s bench -- --size real --repeats 5`` or ``-- --device cuda``.
    """
    install(session, *(p.path for p in Package))
    args = session.posargs or ["--size", "small"]
    for workload in ("caption", "vqa"):
        session.run("python", "benchmarks/train_step.py", "--workload", workload, *args)
    session.run("python", "benchmarks/generate.py", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
