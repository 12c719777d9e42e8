"""Child processes for the devstack: spawn with a log file, wait for readiness, stop politely.

Every child runs in its own session (and so its own process group): a Ctrl-C in the terminal
reaches only the parent, which then stops the children in order, and a signal sent to a child's
group also reaches anything that child forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path


class ProcessExited(RuntimeError):
    """A child process exited while we were waiting for it to become ready."""


def tail(path: Path | None, lines: int = 40, *, start: int = 0) -> str:
    """The last `lines` lines of a text file from byte offset `start` on ("" when missing)."""
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(start, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (Linux), to recognise a reused pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_cwd(pid: int) -> Path | None:
    """The current directory of a process (Linux), None when unknown."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def processes_with_cwd(directory: Path) -> list[int]:
    """Pids of processes whose current directory is `directory` (Linux; [] elsewhere)."""
    target = str(directory.resolve())
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit() and str(process_cwd(int(entry))) == target and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group led by `pid` (falling back to the process alone)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def terminate_pid(pid: int, timeout: float, first: int = signal.SIGTERM) -> None:
    """Stop a process we did not spawn (a leftover): `first` to its group, then SIGKILL."""
    signal_group(pid, first)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


class ManagedProcess:
    """One child process, its stdout+stderr appended to `log_path`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: int | None = None,
        group: int | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.group = group
        self.popen: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where this run's output begins in the (appended) log

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n===== {stamp} starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            extra: dict[str, object] = {}
            if self.user is not None:
                extra = {"user": self.user, "group": self.group, "extra_groups": []}
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                **extra,  # type: ignore[arg-type]
            )
        return self

    def check_running(self) -> None:
        """Raise ProcessExited (with the tail of the log) when the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise ProcessExited(self.exit_report())

    def output(self, lines: int = 30) -> str:
        """The last `lines` lines this run wrote to the log."""
        return tail(self.log_path, lines, start=self._log_start)

    def exit_report(self, lines: int = 30) -> str:
        code = self.returncode
        how = f"exited with code {code}" if code is not None else "is running"
        if code is not None and code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        text = f"{self.name} {how} (log: {self.log_path})"
        log_tail = self.output(lines)
        return (
            f"{text}\n--- last lines of {self.log_path.name} ---\n{log_tail}" if log_tail else text
        )

    def send(self, sig: int, *, group: bool = True) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        if group:
            signal_group(self.popen.pid, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> bool:
        """Wait until the process exits; True when it did within `timeout`."""
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(
        self, timeout: float = 10.0, sig: int = signal.SIGTERM, *, group: bool = True
    ) -> int | None:
        """Send `sig`, wait up to `timeout`, then SIGKILL the group; returns the exit code."""
        if self.popen is None or self.popen.poll() is not None:
            return self.returncode
        self.send(sig, group=group)
        if self.wait(timeout):
            self._clear_group()
        else:
            self.kill()
        return self.popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the process group and reap the process; returns the exit code."""
        if self.popen is None or self.popen.poll() is not None:
            return self.returncode
        signal_group(self.popen.pid, signal.SIGKILL)
        self.wait(10)
        return self.popen.returncode

    def _clear_group(self) -> None:
        """The leader has just exited: kill anything it forked that is still in its group."""
        if self.popen is not None:
            signal_group(self.popen.pid, signal.SIGKILL)


def stop_all(procs: Sequence[ManagedProcess], timeout: float) -> None:
    """SIGTERM every running process at once, wait up to `timeout` for all, SIGKILL the rest."""
    running = [p for p in procs if p.alive()]
    for proc in running:
        proc.send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        if proc.wait(max(0.0, deadline - time.monotonic())):
            proc._clear_group()
        else:
            proc.kill()


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    watch: Sequence[ManagedProcess] = (),
    interval: float = 0.1,
) -> None:
    """Poll `ready()` until it is true; raise ProcessExited if a watched process dies first,
    TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watch:
            proc.check_running()
        if ready():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
