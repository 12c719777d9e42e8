"""`fairway logs NAME`: a workload's pod log, printed as it comes (`-f` follows it)."""

import re
import sys
from typing import Annotated

import typer

from fairway_cli.client import INVALID, NOT_FOUND, Api, CliError
from fairway_cli.output import err, fail

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds of `90`, `30s`, `5m`, `2h30m` or `1d`."""
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CliError(f"--since {text!r}: expected a duration such as 30s, 5m, 2h30m or 1d",
                       INVALID)
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def choose_pod(workload: dict, pods: list[dict], wanted: str | None) -> dict:
    """The pod asked for, or the workload's first: the master of a distributed workload, else
    the first by name."""
    if not pods:
        raise CliError(f"workload {workload['name']!r} has no pods yet (it is "
                       f"{workload['phase']}); try again once it is running", NOT_FOUND)
    if wanted is not None:
        for pod in pods:
            if pod.get("name") == wanted:
                return pod
        names = ", ".join(p.get("name", "?") for p in pods)
        raise CliError(f"workload {workload['name']!r} has no pod {wanted!r}; its pods: "
                       f"{names}", NOT_FOUND)
    return sorted(pods, key=lambda p: (p.get("role") != "master", p.get("name", "")))[0]


def logs(
    name: Annotated[str, typer.Argument(help="workload name or id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help=(
        "keep printing lines as they are written, until the container ends (Ctrl-C to "
        "stop)"))] = False,
    pod: Annotated[str | None, typer.Option("--pod", help=(
        "which pod (default: the first; the master of a distributed workload)"))] = None,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="only the last N lines")
                    ] = None,
    since: Annotated[str | None, typer.Option("--since", help=(
        "only lines written in the last DURATION: 30s, 5m, 2h"))] = None,
    container: Annotated[str | None, typer.Option("--container", "-c", help=(
        "which container (Fairway's pods have one, main)"))] = None,
    previous: Annotated[bool, typer.Option("--previous", help=(
        "the log of the run before the container's last restart"))] = False,
    timestamps: Annotated[bool, typer.Option("--timestamps", help=(
        "prefix each line with the time it was written"))] = False,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
) -> None:
    """Print a workload's pod log; -f follows it as it is written."""
    try:
        api = Api()
        workload = api.find_workload(name, project)
        wid = workload["workloadId"]
        pods = api.call("GET", f"/api/v1/workloads/{wid}/pods")["pods"]
        chosen = choose_pod(workload, pods, pod)
        if pod is None and len(pods) > 1:  # say which, on stderr: stdout is the log
            err.print(f"pod {chosen['name']} ({chosen.get('role', '')}, 1 of {len(pods)}; "
                      "--pod chooses another)", highlight=False)
        params: dict[str, str | int] = {}
        for key, value in (("follow", follow), ("previous", previous),
                           ("timestamps", timestamps)):
            if value:
                params[key] = "true"
        if tail is not None:
            params["tailLines"] = tail
        if since is not None:
            params["sinceSeconds"] = max(1, parse_duration(since))
        if container is not None:
            params["container"] = container
        out = sys.stdout.buffer
        for chunk in api.stream_text(f"/api/v1/workloads/{wid}/pods/{chosen['name']}/logs",
                                     params, wait=follow):
            out.write(chunk)
            out.flush()
    except CliError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass
