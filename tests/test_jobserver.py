"""The job server: a script handed over by `delegate` runs in a forked, warm child as itself."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from aifa_steps.core.jobserver import ENV_SOCKET, start_server, stop_server

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from aifa_steps.core.jobserver import delegate

    delegate()
    import astropy.nddata  # preloaded in the server: no import cost there
    print("pid", os.getpid(), "cwd", os.getcwd(), "arg", sys.argv[1], "env", os.environ["JOBVAR"])
    print("to stderr", file=sys.stderr)
    if sys.argv[1] == "raise":
        raise RuntimeError("the job's own error")
    sys.exit(int(sys.argv[1]))
    """
)


@pytest.fixture
def server(tmp_path):
    process, path = start_server(tmp_path / "server.log", tmp_path / "usage.tsv")
    yield process, path, tmp_path
    stop_server(process)


def _job(script, path, cwd, arg, socket=None):
    env = {**os.environ, "JOBVAR": f"value-{arg}"}
    env.pop(ENV_SOCKET, None)
    if socket:
        env[ENV_SOCKET] = socket
    return subprocess.run(
        [sys.executable, str(script), arg], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_a_delegated_job_runs_in_a_child_of_the_server_with_its_own_cwd_env_and_status(
    server,
):
    process, path, tmp_path = server
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    job_dir = tmp_path / "jobdir"
    job_dir.mkdir()
    done = _job(script, path, job_dir, "3", socket=path)
    assert done.returncode == 3, done.stderr
    words = done.stdout.split()
    assert words[words.index("cwd") + 1] == str(job_dir)
    assert words[words.index("env") + 1] == "value-3"
    child = int(words[words.index("pid") + 1])
    assert child != process.pid  # ... and not the job's own process either:
    assert "to stderr" in done.stderr
    failed = _job(script, path, job_dir, "raise", socket=path)
    assert failed.returncode == 1 and "the job's own error" in failed.stderr
    ok = _job(script, path, job_dir, "0", socket=path)
    assert ok.returncode == 0
    usage = (tmp_path / "usage.tsv").read_text().splitlines()
    assert usage[0].split("\t") == ["script", "status", "wall_s", "cpu_s", "max_rss_mb"]
    assert [line.split("\t")[1] for line in usage[1:]] == ["3", "1", "0"]


def test_a_warm_job_is_faster_than_a_cold_one(server):
    _, path, tmp_path = server
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    _job(script, path, tmp_path, "0", socket=path)  # the server has its imports by now
    start = time.perf_counter()
    warm = _job(script, path, tmp_path, "0", socket=path)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    cold = _job(script, path, tmp_path, "0")
    cold_s = time.perf_counter() - start
    assert warm.returncode == cold.returncode == 0
    assert warm_s < cold_s  # astropy.nddata alone takes ~1 s to import


def test_without_a_server_the_script_runs_in_its_own_process(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    done = _job(script, None, tmp_path, "5", socket=str(tmp_path / "no-such-socket"))
    assert done.returncode == 5 and "env value-5" in done.stdout


def test_a_job_that_goes_away_takes_its_child_along(server):
    _, path, tmp_path = server
    script = tmp_path / "sleeper.py"
    marker = tmp_path / "child.pid"
    script.write_text(
        "import os, time\n"
        "from aifa_steps.core.jobserver import delegate\n"
        "delegate()\n"
        f"open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, ENV_SOCKET: path}
    job = subprocess.Popen([sys.executable, str(script)], env=env)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(marker.read_text())
    job.kill()
    job.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the child of a killed job still runs")


def test_the_server_ends_with_its_parent(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    process, path = start_server(tmp_path / "server.log", parent=parent.pid)
    assert os.path.exists(path)
    parent.kill()
    parent.wait()
    process.wait(timeout=10)
    assert not os.path.exists(path)


def test_a_delegated_job_logs_its_error_and_timing_as_a_cold_one_does(server):
    _, path, tmp_path = server
    script = tmp_path / "logged.py"
    log = tmp_path / "job.log"
    script.write_text(
        "from aifa_steps.core.jobserver import delegate\n"
        "delegate()\n"
        "from aifa_steps.core.runlog import log_to_file\n"
        f"log_to_file({str(log)!r})\n"
        "raise ValueError('bad frame header')\n"
    )
    done = _job(script, path, tmp_path, "x", socket=path)
    assert done.returncode == 1 and "bad frame header" in done.stderr
    text = log.read_text()
    assert "job failed: bad frame header" in text and "timing: start-up" in text


def test_aifa_profile_writes_one_profile_per_job(server, monkeypatch):
    import pstats

    _, path, tmp_path = server
    script = tmp_path / "tmpabcd.job.py"  # as Snakemake names its script copies
    script.write_text(SCRIPT)
    monkeypatch.setenv("AIFA_PROFILE", str(tmp_path / "profiles"))
    done = _job(script, path, tmp_path, "0", socket=path)
    assert done.returncode == 0, done.stderr
    (profile,) = (tmp_path / "profiles").glob("job-*.prof")
    assert pstats.Stats(str(profile)).total_calls > 0
