"""What the benchmarks share: statistics, machine description, server and load-generator processes."""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
#: The server process runs on this CPU, the load generator on the other (2-core machine).
SERVER_CPU = 0
LOAD_CPU = 1


def cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def pin(cpu: int) -> None:
    """Pin the calling process to one CPU when the machine has it (else leave it free)."""
    if cpu in cpus() and len(cpus()) > 1:
        os.sched_setaffinity(0, {cpu})


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    import sqlite3

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "os": f"{platform.system()} {platform.release()}",
    }


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in kB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _pinned(cpu: int | None):
    if cpu is None:
        return None

    def pre() -> None:
        pin(cpu)
        raise_fd_limit()

    return pre


@dataclass
class ServerProcess:
    """`cim serve` or the baseline relay, in its own process on SERVER_CPU, reachable on 127.0.0.1:port."""

    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=self._log, preexec_fn=_pinned(SERVER_CPU), cwd=ROOT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1.0) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz within {timeout}s; see {self.log_path}")

    def rss_kb(self) -> int:
        assert self.proc is not None
        return rss_kb(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cim_server(data_dir: Path, port: int, log_path: Path, **extra_env: str) -> ServerProcess:
    env = {
        **os.environ,
        "CIM_DATA_DIR": str(data_dir),
        "CIM_RESIDENT_RATE_LIMIT": "off",
        "CIM_MAX_CONNECTIONS_PER_ADDRESS": "off",
        "CIM_OPENING_HOURS": "always",
        "CIM_PURGE_DAILY_AT": "off",
        "CIM_RESIDENT_ADDRESS_RATE_LIMIT": "off",
        "CIM_CHAT_OPEN_RATE_LIMIT": "off",
        "CIM_CHAT_OPEN_ADDRESS_RATE_LIMIT": "off",
        "CIM_MAX_QUEUED_CHATS_PER_ADDRESS": "off",
        # the relay benchmarks' few consultants each hold a hundred chats (a load, not a desk: bench/desk.py
        # measures the desk's own capacity of 3)
        "CIM_CHAT_MAX_CONCURRENT": "1000",
        **extra_env,
    }
    cim = shutil.which("cim") or ""
    argv = [cim] if cim else [sys.executable, "-m", "cim"]
    return ServerProcess(argv + ["serve", "--port", str(port), "--log-level", "warning"], env, port, log_path)


def echo_server(port: int, log_path: Path) -> ServerProcess:
    return ServerProcess(
        [sys.executable, "-m", "bench.baseline_echo", "--port", str(port)], dict(os.environ), port, log_path
    )


def run_loadgen(task: str, args: dict[str, Any], *, timeout: float, cpu: int | None = LOAD_CPU) -> dict[str, Any]:
    """Run one load task (bench/loadgen.py) in a separate process on LOAD_CPU; returns its JSON result."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", task],
        input=json.dumps(args).encode(),
        capture_output=True,
        timeout=timeout,
        preexec_fn=_pinned(cpu),
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load generator {task} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return json.loads(proc.stdout.decode())


@dataclass
class Result:
    """One row of the table: a measured figure, its baseline and the target."""

    bench: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.baseline != self.baseline:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": self.note,
            "runs": self.runs,
        }


class LoadProcess:
    """An interactive load task: start → `ready()` (set-up done) → `say("go")` ... `say("stop")` → `result()`."""

    def __init__(self, task: str, args: dict[str, Any], *, cpu: int | None = LOAD_CPU) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", task],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_pinned(cpu),
            cwd=ROOT,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(args) + "\n").encode())
        self.proc.stdin.flush()

    def ready(self, timeout: float = 600) -> dict[str, Any]:
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.kill()
            raise RuntimeError(f"load generator never got ready: {self._stderr()}")
        return json.loads(line)

    def say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((word + "\n").encode())
        self.proc.stdin.flush()

    def window(self, during: Any) -> tuple[dict[str, Any], Any]:
        """One measurement window: `go`, run `during()` (or sleep that many seconds), `stop`, read its result."""
        self.say("go")
        value = during() if callable(during) else time.sleep(during)
        self.say("stop")
        return self.ready(timeout=120), value

    def result(self, timeout: float = 120) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("load generator did not finish in time") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"load generator failed ({self.proc.returncode}): {err.decode()[-2000:]}")
        return json.loads(out.decode().strip().splitlines()[-1])

    def _stderr(self) -> str:
        try:
            _, err = self.proc.communicate(timeout=5)
            return err.decode()[-2000:]
        except subprocess.TimeoutExpired:
            return "(no output)"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
