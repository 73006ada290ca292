"""The wheel, installed in a fresh virtual environment, works inside an application that has its
own `config/settings.py` package and `tasks.py`, through the README's client, against a real
worker (started by `celery -A grant_worker.worker.app worker` from that application's
directory, where Celery puts the directory first on sys.path) and the emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path
from typing import Any

import pytest

from grant_worker.worker.testing import READY_MARK, settings_env
from tests.integration.conftest import make_settings

# One process builds both installs (module fixtures, ~25 s each) and runs every test of them.
pytestmark = pytest.mark.xdist_group("packaging-installs")

ROOT = Path(__file__).resolve().parents[2]
CELERY_WORKER = ["-m", "celery", "-A", "grant_worker.worker.app", "worker"]
PROJECT_FILES = ["pyproject.toml", "README.md", "config", "tasks", "worker", "emulator"]

APP_SETTINGS = 'DATABASE = "postgres://app"\n'
APP_TASKS = "def send_invoice() -> str:\n    return 'the application own tasks'\n"
APP_SCRIPT = """
import json, sys
import config.settings, tasks                   # the application's own modules
from grant_worker import GrantClient, Settings  # the README's import

assert config.settings.DATABASE == "postgres://app"
assert tasks.send_invoice() == "the application own tasks"
with GrantClient(Settings()) as client:
    request_id = client.submit({"grant": {"client_id": sys.argv[1], "audience": sys.argv[2]}})
    outcome = client.wait(request_id, timeout_s=60)
import grant_worker
print(json.dumps({"status": outcome.status, "grant_worker": grant_worker.__file__}))
"""


def copy_source(work: Path) -> Path:
    """The project's files as a source tree of its own (no build artefacts of the checkout)."""
    source = work / "source"
    source.mkdir()
    for name in PROJECT_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    shutil.copytree(ROOT / "grant_worker", source / "grant_worker", symlinks=True)
    return source


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; its dependencies come from the test run's environment."""
    work = tmp_path_factory.mktemp("wheel")
    source = copy_source(work)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = (work / "dist").glob("grant_worker-*.whl")
    target = work / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    # Dependencies: this run's site-packages, appended after the venv's own (a plain path in a
    # .pth file: its own .pth files, the editable install of the checkout among them, are not
    # run, so `grant_worker` can only come from the wheel).
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return target


def test_the_wheel_claims_one_import_name(installed: Path) -> None:
    site = next((installed / "lib").glob("python*/site-packages"))
    top_level = {
        path.name
        for path in site.iterdir()
        if not path.name.endswith((".dist-info", ".pth", "_virtualenv.py"))
        and path.name != "__pycache__"
    }
    assert top_level == {"grant_worker"}


def test_the_wheel_holds_every_lua_script_beside_its_owner(installed: Path) -> None:
    site = next((installed / "lib").glob("python*/site-packages"))
    scripts = {
        path.relative_to(ROOT).as_posix()
        for name in PROJECT_FILES
        if (ROOT / name).is_dir()
        for path in (ROOT / name).rglob("lua/*.lua")
    }
    shipped = {
        path.relative_to(site / "grant_worker").as_posix()
        for path in (site / "grant_worker").rglob("lua/*.lua")
    }
    assert scripts and shipped == scripts


def test_an_application_with_its_own_config_and_tasks_submits_and_waits(
    installed: Path, tmp_path: Path, emulator: Any, key_prefix: str, queue_name: str, redis_url: str
) -> None:
    app = tmp_path / "app"
    (app / "config").mkdir(parents=True)
    (app / "config" / "__init__.py").write_text("")
    (app / "config" / "settings.py").write_text(APP_SETTINGS)
    (app / "tasks.py").write_text(APP_TASKS)
    (app / "provision.py").write_text(APP_SCRIPT)
    settings = make_settings(emulator, key_prefix, queue_name, redis_url=redis_url)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        **settings_env(settings),
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            # `python -m`: the application's directory is first on sys.path, as Celery makes it.
            [str(installed / "bin" / "python"), *CELERY_WORKER],
            cwd=app,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while READY_MARK not in log_path.read_bytes():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        done = subprocess.run(
            [
                str(installed / "bin" / "python"),
                "provision.py",
                "svc-04990",
                "https://api.example.com/",
            ],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["status"] in ("created", "exists")
        assert result["grant_worker"].startswith(str(installed))
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_the_installed_emulator_finds_its_default_tenant(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "from grant_worker.emulator.seed import default_seed as s; print(len(s().clients))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


EXTRAS_MODULES = ("aiohttp", "yaml", "starlette", "jinja2", "uvicorn", "multipart", "pytest")


@pytest.fixture(scope="module")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel as `pip install grant-worker` installs it: its own dependencies, resolved by
    pip from the package index this machine uses, on the versions of constraints.txt, and no
    extra."""
    work = tmp_path_factory.mktemp("base")
    source = copy_source(work)
    target = work / "venv"
    venv.create(target, with_pip=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target / "bin" / "python"),
            "install",
            "-q",
            "-c",
            str(ROOT / "constraints.txt"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return target


def run_in(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        list(args), cwd=target, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_plain_install_carries_no_extra_yet_serves_producers_and_the_core_commands(
    base_install: Path,
) -> None:
    python = str(base_install / "bin" / "python")
    probe = (
        "import importlib.util, json\n"
        "from grant_worker import GrantClient, Settings\n"
        f"print(json.dumps([m for m in {EXTRAS_MODULES!r} if importlib.util.find_spec(m)]))"
    )
    done = run_in(base_install, python, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    grants = str(base_install / "bin" / "grants")
    for command in ("--help", "submit --help", "worker --help", "doctor --help", "dlq --help"):
        shown = run_in(base_install, grants, *command.split())
        assert shown.returncode == 0, (command, shown.stderr)


def test_commands_of_an_extra_name_it_in_one_line(base_install: Path) -> None:
    grants = str(base_install / "bin" / "grants")
    for command, extra in (
        ("dashboard", "dashboard"),
        ("emulator", "emulator"),
        ("demo", "emulator"),
    ):
        done = run_in(base_install, grants, command, "--port", "8808")
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.strip().splitlines() == [
            f"error: grants {command} needs the [{extra}] extra: "
            f"pip install 'grant-worker[{extra}]'"
        ]
