"""Scale-out: two ``tune`` workers on one PostgreSQL URL share one study (a real server on loopback)."""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest


def _server_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # Debian ships them in /usr/lib/postgresql/N/bin
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


BIN = _server_binaries()
pytestmark = pytest.mark.skipif(BIN is None, reason="PostgreSQL server not installed "
                                                    "(Debian: apt-get install -y postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL cluster on 127.0.0.1 (trust auth), stopped and deleted afterwards."""
    pytest.importorskip("psycopg", reason="no PostgreSQL driver (pip install 'psycopg[binary]')")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the Debian package's user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser(1) to start the server as 'postgres'")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="nas-estimators-pg-"))
    if as_user:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", _free_port()

    def run(*command, timeout=120):
        return subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=timeout)

    try:
        initdb = run(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                     "--no-sync")
        assert initdb.returncode == 0, initdb.stderr[-2000:]
        start = run(str(BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
                    "start")
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        created = subprocess.run([str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                  "optuna"], capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_on_one_postgres_url_share_one_study(postgres_url, tmp_path):
    trials_each = 2
    workers = []
    for worker in range(2):
        command = [sys.executable, "-m", "nas_estimators", "tune", "--estimator", "sf", "--space", "nb201",
                   "--width", "4", "--cells", "1", "--epochs", "1", "--n-trials", str(trials_each),
                   "--storage", postgres_url, "--study-name", "shared", "--sampler", "random",
                   "--sampler-seed", str(worker), "--output", str(tmp_path / f"worker{worker}")]
        workers.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")))
    started = time.monotonic()
    results = [worker.communicate(timeout=600) for worker in workers]
    for worker, (out, err) in zip(workers, results):
        assert worker.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    assert time.monotonic() - started < 600

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.trials
    # Every trial of both workers, each number once, all finished.
    assert sorted(t.number for t in trials) == list(range(2 * trials_each))
    assert len({t._trial_id for t in trials}) == 2 * trials_each
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for worker in range(2):
        mine = [t for t in trials if t.user_attrs["output"].startswith(str(tmp_path / f"worker{worker}"))]
        assert len(mine) == trials_each, [t.user_attrs["output"] for t in trials]
        for trial in mine:  # each search wrote into its own directory, on its own worker
            assert (Path(trial.user_attrs["output"]) / "architecture.json").is_file()
    for out, _ in results:  # both opened the same study and reported a best trial of it
        assert "study 'shared' in postgresql://postgres@127.0.0.1:" in out and "best: trial " in out
