"""`fairway submit workspace | training | distributed | inference`, `list`, `describe`,
`suspend`, `resume`, `delete`, `watch`."""

import inspect
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from fairway_cli import config
from fairway_cli.client import INVALID, Api, CliError
from fairway_cli.output import age, as_json, console, fail, phase
from fairway_contracts.workloads import PLURALS

submit_app = typer.Typer(help="Submit a workload.", no_args_is_help=True)

PLURAL = {str(kind): plural for kind, plural in PLURALS.items()}
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON")]


def _pairs(values: list[str] | None, flag: str) -> list[dict[str, str]]:
    out = []
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"{flag} {item!r}: expected NAME=VALUE", INVALID)
        out.append({"name": name, "value": value})
    return out


def _opt(annotation: Any, default: Any = None) -> Any:
    return annotation, default


# Flags every submit command has: name → (annotation, default)
COMMON: dict[str, tuple[Any, Any]] = {
    "project": _opt(Annotated[str | None, typer.Option(
        "--project", "-p", help="project name or id (default: `fairway project set`)")]),
    "image": _opt(Annotated[str, typer.Option("--image", "-i", help="container image")],
                  ...),
    "command": _opt(Annotated[str | None, typer.Option(help="command to run")]),
    "args": _opt(Annotated[str | None, typer.Option("--args", help="arguments")]),
    "gpu": _opt(Annotated[float | None, typer.Option(
        "--gpu", "-g", help="GPU devices per pod (2), or a portion of one GPU (0.5)")]),
    "gpu_devices": _opt(Annotated[int | None, typer.Option(
        "--gpu-devices", help="devices a fraction shares, the same portion of each "
                              "(default 1)")]),
    "gpu_portion": _opt(Annotated[float | None, typer.Option(
        "--gpu-portion-request", "--gpu-portion",
        help="a portion of each GPU device, e.g. 0.5")]),
    "gpu_portion_limit": _opt(Annotated[float | None, typer.Option(
        "--gpu-portion-limit", help="the portion a dynamic fraction may grow to")]),
    "gpu_memory": _opt(Annotated[str | None, typer.Option(
        "--gpu-memory-request", "--gpu-memory", help="GPU memory of one device, e.g. 10Gi")]),
    "gpu_memory_limit": _opt(Annotated[str | None, typer.Option(
        "--gpu-memory-limit", help="the GPU memory a dynamic fraction may grow to")]),
    "cpu": _opt(Annotated[float | None, typer.Option("--cpu", help="CPU cores")]),
    "cpu_limit": _opt(Annotated[float | None, typer.Option("--cpu-limit")]),
    "memory": _opt(Annotated[str | None, typer.Option("--memory", help="e.g. 16Gi")]),
    "memory_limit": _opt(Annotated[str | None, typer.Option("--memory-limit")]),
    "node_pools": _opt(Annotated[list[str] | None, typer.Option(
        "--node-pools", help="node pool, in preference order; repeatable")]),
    "node_type": _opt(Annotated[str | None, typer.Option("--node-type")]),
    "required_topology": _opt(Annotated[str | None, typer.Option(
        "--required-pod-topology-key",
        help="every pod inside one domain of this topology level of the node pool (its node "
             "label key, e.g. a rack label); else the workload waits")]),
    "preferred_topology": _opt(Annotated[str | None, typer.Option(
        "--preferred-pod-topology-key",
        help="the smallest domain of this topology level with room first, then wider "
             "levels")]),
    "priority": _opt(Annotated[str | None, typer.Option(help="priority class")]),
    "preemptible": _opt(Annotated[bool | None, typer.Option(
        "--preemptible/--non-preemptible", help="default: from the priority class")]),
    "backoff_limit": _opt(Annotated[int | None, typer.Option(help="retries before Failed")]),
    "restart_policy": _opt(Annotated[str | None, typer.Option(
        help="Always | OnFailure | Never")]),
    "terminate_after_preemption": _opt(Annotated[bool, typer.Option(
        "--terminate-after-preemption")], False),
    "auto_delete_seconds": _opt(Annotated[int | None, typer.Option(
        "--auto-delete-seconds", help="delete this long after completion")]),
    "env": _opt(Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE")]),
    "annotation": _opt(Annotated[list[str] | None, typer.Option(help="NAME=VALUE")]),
    "label": _opt(Annotated[list[str] | None, typer.Option(help="NAME=VALUE")]),
    "name_prefix": _opt(Annotated[bool, typer.Option(
        "--name-prefix", help="add a random suffix to the name")], False),
    "json_output": _opt(JsonFlag, False),
}


def _fraction_words(requested: dict[str, Any]) -> str:
    """What a fraction asks for, in words: "0.25 of each of 2 GPUs, up to 0.75"."""
    kind = requested.get("gpuRequestType")
    if kind is None:
        return ""
    devices = requested.get("gpuDevices") or 1
    where = "one GPU" if devices == 1 else f"each of {devices} GPUs"
    if kind == "portion":
        words = f"{requested.get('gpuPortion', 0):g} of {where}"
        limit = requested.get("gpuPortionLimit")
    else:
        words = f"{requested.get('gpuMemory')} of GPU memory on {where}"
        limit = requested.get("gpuMemoryLimit")
    return words + (f", up to {limit:g}" if isinstance(limit, float | int) else
                    f", up to {limit}" if limit else "")


def _pod_gpu(pod: dict[str, Any]) -> str:
    """A pod's GPUs: whole devices, or its portion of the devices it shares (with their UUIDs
    and the GPU memory it may use and uses)."""
    if pod.get("gpuPortion") is None:
        return str(pod.get("gpus") or "-")
    devices = ",".join(map(str, pod.get("gpuDevices") or [])) or "?"
    words = f"{pod['gpuPortion']:g} of device {devices}"
    if pod.get("gpuUuids"):
        words += f" ({','.join(pod['gpuUuids'])})"
    used, limit = pod.get("gpuMemoryUsedMib"), pod.get("gpuMemoryLimitMib")
    limit = pod.get("gpuCurrentMemoryLimitMib") or limit
    if limit:
        words += f", memory {used if used is not None else '?'}/{limit} MiB"
    current = pod.get("gpuCurrentDevices")
    if current:  # the node-level scheduler acted on it
        restarts = pod.get("gpuProcessRestarts") or 0
        words += (f", runs on device {','.join(map(str, current))} now (GPU process "
                  f"restarted {restarts} time{'s' if restarts != 1 else ''})")
    swapped = pod.get("gpuSwappedMib")
    if swapped:  # GPU memory swap: idle, its memory waits in host memory
        words += f", {swapped} MiB swapped out to host memory"
    if pod.get("gpuActive") is not None:
        words += ", active" if pod["gpuActive"] else ", idle"
    return words


def _gpu_flags(o: dict[str, Any]) -> tuple[int | None, float | None]:
    """`-g`: whole devices (2) or a portion of one device (0.5); with `--gpu-devices` N, the
    portion of each of N devices. The devices and the portion to send."""
    gpu, devices, portion = o["gpu"], o["gpu_devices"], o["gpu_portion"]
    if gpu is None:
        return devices, portion
    if 0 < gpu < 1:
        if portion is not None:
            raise CliError("-g/--gpu with a portion below 1 and --gpu-portion-request: give "
                           "one of them", INVALID)
        return devices, gpu
    if gpu < 0 or gpu != int(gpu):
        raise CliError(f"-g/--gpu {gpu:g}: give whole GPUs (1, 2, …) or a portion of one "
                       "between 0 and 1 (0.5); for a portion of several GPUs use "
                       "--gpu-portion-request with --gpu-devices", INVALID)
    if devices is not None and devices != int(gpu):
        raise CliError(f"-g/--gpu {gpu:g} and --gpu-devices {devices}: give one of them",
                       INVALID)
    return int(gpu), portion


def _common_spec(o: dict[str, Any]) -> dict[str, Any]:
    devices, portion = _gpu_flags(o)
    o = {**o, "gpu": devices, "gpu_portion": portion}
    compute = {"gpuDevicesRequest": o["gpu"], "gpuPortionRequest": o["gpu_portion"],
               "gpuPortionLimit": o["gpu_portion_limit"], "gpuMemoryRequest": o["gpu_memory"],
               "gpuMemoryLimit": o["gpu_memory_limit"], "cpuCoreRequest": o["cpu"],
               "cpuCoreLimit": o["cpu_limit"], "cpuMemoryRequest": o["memory"],
               "cpuMemoryLimit": o["memory_limit"]}
    if o["gpu_portion"] is not None:
        compute["gpuRequestType"] = "portion"
    elif o["gpu_memory"] is not None:
        compute["gpuRequestType"] = "memory"
    spec = {
        "image": o["image"], "command": o["command"], "args": o["args"],
        "compute": {k: v for k, v in compute.items() if v is not None},
        "nodePools": o["node_pools"] or None, "nodeType": o["node_type"],
        "topology": {k: v for k, v in (("requiredPlacement", o["required_topology"]),
                                       ("preferredPlacement", o["preferred_topology"]))
                     if v is not None} or None,
        "priorityClass": o["priority"],
        "preemptibility": None if o["preemptible"] is None else (
            "preemptible" if o["preemptible"] else "non-preemptible"),
        "backoffLimit": o["backoff_limit"], "restartPolicy": o["restart_policy"],
        "terminateAfterPreemption": o["terminate_after_preemption"] or None,
        "autoDeletionTimeAfterCompletionSeconds": o["auto_delete_seconds"],
        "environmentVariables": _pairs(o["env"], "--env") or None,
        "annotations": _pairs(o["annotation"], "--annotation") or None,
        "labels": _pairs(o["label"], "--label") or None,
    }
    return {k: v for k, v in spec.items() if v is not None}


def submit_command(kind: str) -> Callable:
    """Register `fairway submit <kind>`: the common flags plus those of `fn`, which adds its
    type's fields to the spec."""

    def decorator(fn: Callable[..., dict[str, Any]]) -> Callable:
        own = list(inspect.signature(fn).parameters.values())
        params = [inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=Annotated[str, typer.Argument(
                                        help="workload name (lowercase, digits, '-')")])]
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a,
                                     default=d)
                   for n, (a, d) in COMMON.items()]
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        def command(**kwargs: Any) -> None:
            name = kwargs.pop("name")
            common = {k: kwargs.pop(k) for k in COMMON}
            try:
                api = Api()
                spec = _common_spec(common)
                spec.update({k: v for k, v in fn(**kwargs).items() if v is not None})
                body = {"name": name, "projectId": api.project_id(common["project"]),
                        "useGivenNameAsPrefix": common["name_prefix"], "spec": spec}
                w = api.call("POST", f"/api/v1/workloads/{PLURAL[kind]}", json=body)
            except CliError as exc:
                fail(exc)
            if common["json_output"]:
                as_json(w)
                return
            console.print(f"{kind} [bold]{w['name']}[/bold] submitted to project "
                          f"{w['projectName']} (id {w['workloadId']})", highlight=False)
            console.print(f"follow it with: fairway describe {w['name']}", highlight=False)

        command.__signature__ = inspect.Signature(params)
        command.__doc__ = fn.__doc__
        command.__name__ = f"submit_{kind}"
        submit_app.command(kind)(command)
        return fn

    return decorator


@submit_command("workspace")
def _workspace() -> dict[str, Any]:
    """Submit a workspace (interactive; runs until stopped)."""
    return {}


@submit_command("training")
def _training(
    completions: Annotated[int | None, typer.Option(help="successful pods needed")] = None,
    parallelism: Annotated[int | None, typer.Option(help="pods at once")] = None,
) -> dict[str, Any]:
    """Submit a training (runs to completion)."""
    return {"completions": completions, "parallelism": parallelism}


@submit_command("distributed")
def _distributed(
    workers: Annotated[int | None, typer.Option("--workers", help="worker pods")] = None,
    framework: Annotated[str, typer.Option(help="MPI | PyTorch | TF | XGBoost | JAX")
                         ] = "PyTorch",
    min_replicas: Annotated[int | None, typer.Option(
        "--min-replicas", help="elastic: workers needed to start")] = None,
    max_replicas: Annotated[int | None, typer.Option(
        "--max-replicas", help="elastic: most workers")] = None,
    master_image: Annotated[str | None, typer.Option(
        "--master-image", help="the master's own image (default: the workers')")] = None,
    master_command: Annotated[str | None, typer.Option("--master-command")] = None,
    master_args: Annotated[str | None, typer.Option("--master-args")] = None,
    master_env: Annotated[list[str] | None, typer.Option(
        "--master-env", help="NAME=VALUE for the master only, repeatable")] = None,
    master_gpu: Annotated[int | None, typer.Option(
        "--master-gpu", help="the master's whole GPUs (0: a launcher with none)")] = None,
    master_cpu: Annotated[float | None, typer.Option("--master-cpu")] = None,
    master_memory: Annotated[str | None, typer.Option("--master-memory")] = None,
) -> dict[str, Any]:
    """Submit a distributed training (a master and its workers, started together); any
    --master-* option gives the master a spec of its own."""
    compute = {k: v for k, v in (("gpuDevicesRequest", master_gpu),
                                 ("cpuCoreRequest", master_cpu),
                                 ("cpuMemoryRequest", master_memory)) if v is not None}
    master = {k: v for k, v in (("image", master_image), ("command", master_command),
                                ("args", master_args),
                                ("environmentVariables", _pairs(master_env, "--master-env")),
                                ("compute", compute)) if v}
    return {"numWorkers": workers, "distributedFramework": framework,
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "masterSpecSameAsWorker": False if master else None, "masterSpec": master or None}


@submit_command("inference")
def _inference(
    serving_port: Annotated[int | None, typer.Option("--serving-port",
                                                     help="the container's port")] = None,
    protocol: Annotated[str | None, typer.Option(help="http | grpc")] = None,
    authorization: Annotated[str | None, typer.Option(
        "--authorization", help="public | authenticatedUsers | authorizedUsersOrGroups")
    ] = None,
    external: Annotated[bool, typer.Option(
        "--external", help="reachable from outside the cluster (clusterLocalAccessOnly "
                           "false)")] = False,
    min_replicas: Annotated[int | None, typer.Option("--min-replicas",
                                                     help="0: scale to zero")] = None,
    max_replicas: Annotated[int | None, typer.Option("--max-replicas")] = None,
    metric: Annotated[str | None, typer.Option(
        help="throughput | concurrency | latency | a custom metric")] = None,
    metric_threshold: Annotated[float | None, typer.Option("--metric-threshold")] = None,
    scale_to_zero_after: Annotated[int | None, typer.Option(
        "--scale-to-zero-after", help="seconds without requests before scaling to zero")
    ] = None,
    initialization_timeout: Annotated[int | None, typer.Option(
        "--initialization-timeout", help="seconds a new replica may take to be ready")
    ] = None,
) -> dict[str, Any]:
    """Submit an inference server (a Service in front of its replicas; autoscaled)."""
    autoscaling = {k: v for k, v in (("minReplicas", min_replicas),
                                     ("maxReplicas", max_replicas), ("metric", metric),
                                     ("metricThreshold", metric_threshold),
                                     ("scaleToZeroRetentionSeconds", scale_to_zero_after),
                                     ("initializationTimeoutSeconds", initialization_timeout))
                   if v is not None}
    port = {k: v for k, v in (("container", serving_port), ("protocol", protocol),
                              ("authorizationType", authorization)) if v is not None}
    if external:
        port["clusterLocalAccessOnly"] = False
    return {"servingPort": port or None, "autoscaling": autoscaling or None}


# reading -------------------------------------------------------------------------------------

def _list(api: Api, project: str | None, everything: bool) -> dict[str, Any]:
    project = project or (None if everything else config.load().get("project"))
    params: dict[str, Any] = {"limit": 500}
    if project:
        params["filterBy"] = (f"projectId=={project}" if project.isdigit()
                              else f"projectName=={project}")
    return api.call("GET", "/api/v1/workloads", params=params)


def _table(workloads: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "PROJECT", "TYPE", "PHASE", "GPUS", "PODS", "NODE POOLS", "AGE",
                "REASON"):
        table.add_column(col)
    for w in workloads:
        p = w["phase"]
        why = w.get("phaseMessage") if p in ("Pending", "Failed", "Degraded") else ""
        if w["desiredPhase"] != "Running" and w["desiredPhase"] != p:
            why = f"→ {w['desiredPhase']}" + (f"; {why}" if why else "")
        pools = ",".join(w["currentNodePools"] or w["requestedNodePools"]) or "-"
        table.add_row(w["name"], w["projectName"], _type_words(w), phase(p),
                      f"{w['requestedResources'].get('gpu', 0):g}",
                      f"{w['runningPods']}/{w['requestedPods']}", pools, age(w["createdAt"]),
                      why or "")
    return table


def _type_words(w: dict[str, Any]) -> str:
    """The type; a third-party workload's with its owner's kind and namespace."""
    if w.get("kind"):
        return f"{w['type']} {w['kind']} ({w.get('namespace') or '-'})"
    return w["type"]


def _owner_line(w: dict[str, Any]) -> str | None:
    """A third-party workload's top owner, its namespace and how its pods are grouped."""
    owner = w.get("owner")
    if not owner:
        return None
    grouping = {"gang": f"a gang of {owner['minMembers']}",
                "elastic": f"elastic, never below {owner['minMembers']}",
                }.get(owner["grouping"], "pods one by one")
    return (f"owner:    {owner['kind']} {owner['name']} in namespace {owner['namespace']} "
            f"({owner['apiVersion']}, uid {owner['uid']}); {grouping}")


def list_workloads(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    everything: Annotated[bool, typer.Option("--all", "-A", help="every project")] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh every 2 s")] = False,
    json_output: JsonFlag = False,
) -> None:
    """List workloads: phase, GPUs, node pools, age, and why a pending one waits."""
    if watch:
        watch_workloads(project, everything)
        return
    try:
        data = _list(Api(), project, everything)
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(data)
        return
    console.print(_table(data["workloads"]))


def watch_workloads(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    everything: Annotated[bool, typer.Option("--all", "-A")] = False,
    interval: Annotated[float, typer.Option(help="seconds between refreshes")] = 2.0,
) -> None:
    """A live table of workloads (Ctrl-C to stop)."""
    try:
        api = Api()
        with Live(_table(_list(api, project, everything)["workloads"]), console=console,
                  auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(_table(_list(api, project, everything)["workloads"]), refresh=True)
    except CliError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass


def describe(
    name: Annotated[str, typer.Argument(help="workload name or id")],
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    json_output: JsonFlag = False,
) -> None:
    """A workload: spec, pods, phase history with reasons, and why it is pending."""
    try:
        api = Api()
        w = api.find_workload(name, project)
        wid = w["workloadId"]
        events = api.call("GET", f"/api/v1/workloads/{wid}/events")["events"]
        pods = api.call("GET", f"/api/v1/workloads/{wid}/pods")["pods"]
    except CliError as exc:
        fail(exc)
    kube_events, kube_problem = _kubernetes_events(api, wid)
    if json_output:
        as_json({**w, "pods": pods, "events": events, "kubernetesEvents": kube_events})
        return
    p = w["phase"]
    out = console.print
    out(f"[bold]{w['name']}[/bold]  ({_type_words(w)}, project {w['projectName']}, id {wid})",
        highlight=False)
    if owner := _owner_line(w):
        out(owner, highlight=False)
    message = w.get("phaseMessage") if p != "Pending" else None
    out(f"phase:    {phase(p)}" + (f" — {message}" if message else ""), highlight=False)
    if p == "Pending":
        out(f"[yellow]pending because:[/] {w.get('phaseMessage') or w.get('phaseReason') or '?'}",
            highlight=False)
    if w["desiredPhase"] != "Running":
        out(f"desired:  {w['desiredPhase']}")
    out(f"priority: {w['priorityClassName']} "
        f"({'preemptible' if w['preemptible'] else 'non-preemptible'})")
    out(f"GPUs:     {w['requestedResources'].get('gpu', 0):g} requested, "
        f"{w['allocatedResources'].get('gpu', 0):g} allocated; pods "
        f"{w['runningPods']}/{w['requestedPods']} running", highlight=False)
    if fraction := _fraction_words(w["requestedResources"]):
        out(f"fraction: {fraction}", highlight=False)
    out(f"pools:    requested {', '.join(w['requestedNodePools']) or 'any'}; "
        f"current {', '.join(w['currentNodePools']) or '-'}", highlight=False)
    out(f"created:  {w['createdAt']} by {w['createdBy']}; pending "
        f"{w['totalPendingTimeSeconds']:.1f}s, running {w['totalRunningTimeSeconds']:.1f}s",
        highlight=False)
    spec = w["spec"]
    if spec.get("image"):  # a third-party workload's pods are its owner's: no image of ours
        out(f"image:    {spec.get('image')}" + (f"  command: {spec['command']}"
                                                if spec.get("command") else ""),
            highlight=False)
    if decided := _decided(spec, w.get("submittedSpec") or {}):
        out(f"decided:  {decided}  (by policy and defaults, not submitted)", highlight=False)
    if w["type"] == "inference":
        for line in _serving_lines(w):
            out(line, highlight=False)
    for table in _describe_tables(pods, events, kube_events):
        out(table)
    if kube_events is None:
        out(f"[yellow]Kubernetes events unavailable:[/] {kube_problem}", highlight=False)


def _kubernetes_events(api: Api, wid: str) -> tuple[list[dict[str, Any]] | None, str]:
    """Read from the cluster, not from Fairway's tables: when the cluster cannot be asked,
    the rest is still worth showing (None, and why)."""
    try:
        return api.call("GET", f"/api/v1/workloads/{wid}/kubernetes-events")["events"], ""
    except CliError as exc:
        return None, str(exc)


def _describe_tables(pods: list[dict[str, Any]], events: list[dict[str, Any]],
                     kube_events: list[dict[str, Any]] | None) -> list[Table]:
    """`describe`'s tables: the pods, the phase history, what Kubernetes recorded."""
    tables = []
    if pods:
        table = Table(title="pods", box=None, header_style="bold")
        for col in ("NAME", "ROLE", "NODE", "PHASE", "GPU"):
            table.add_column(col)
        for pod in pods:
            table.add_row(pod.get("name", "?"), str(pod.get("role", "")),
                          pod.get("node") or "-", pod.get("phase", "?"), _pod_gpu(pod))
        tables.append(table)
    table = Table(title="phase history", box=None, header_style="bold")
    for col in ("TIME", "FROM", "TO", "REASON", "MESSAGE"):
        table.add_column(col)
    for e in events:
        table.add_row(e["time"][11:19], e["from"] or "-", e["to"], e["reason"], e["message"])
    tables.append(table)
    if kube_events:
        table = Table(title="Kubernetes events (the last 20)", box=None, header_style="bold")
        for col in ("TIME", "POD", "TYPE", "REASON", "MESSAGE"):
            table.add_column(col)
        for e in kube_events[-20:]:
            count = f" (x{e['count']})" if e["count"] > 1 else ""
            table.add_row((e["lastTime"] or "")[11:19], e["pod"], e["type"], e["reason"],
                          e["message"] + count)
        tables.append(table)
    return tables


def _serving_lines(w: dict[str, Any]) -> list[str]:
    """An inference server's endpoint, replicas and load, as `describe` shows them."""
    port = w["spec"].get("servingPort") or {}
    missing = "- (not reported yet)" if port else "- (no servingPort)"
    lines = [f"endpoint: {w.get('endpoint') or missing}"
             + (f"  ({port.get('authorizationType', 'public')}"
                f"{', cluster-local' if port.get('clusterLocalAccessOnly', True) else ''})"
                if port else "")]
    serving = w.get("serving") or {}
    replicas = (f"replicas: {w.get('readyReplicas', 0)} ready of "
                f"{w.get('desiredReplicas', 0)} desired")
    if serving.get("maxReplicas") is not None:
        replicas += f" (min {serving.get('minReplicas', 0)}, max {serving['maxReplicas']})"
    lines.append(replicas)
    if serving.get("metric"):
        value = serving.get("metricValue")
        lines.append(f"load:     {serving.get('requestsPerSecond', 0):g} req/s; "
                     f"{serving['metric']} {'-' if value is None else f'{value:.3g}'} "
                     f"(threshold {serving.get('metricThreshold', 0):g} per replica)")
    return lines


def _act(action: str, names: list[str], project: str | None) -> None:
    try:
        api = Api()
        for name in names:
            w = api.find_workload(name, project)
            # a third-party workload's path segment is its type, thirdParty
            path = f"/api/v1/workloads/{PLURAL.get(w['type'], w['type'])}/{w['workloadId']}"
            if action == "delete":
                api.call("DELETE", path)
            else:
                api.call("POST", f"{path}/{action}")
            console.print(f"{action} requested for {w['type']} [bold]{w['name']}[/bold]",
                          highlight=False)
    except CliError as exc:
        fail(exc)


Names = Annotated[list[str], typer.Argument(help="workload names or ids")]
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p")]


def suspend(names: Names, project: ProjectOpt = None) -> None:
    """Suspend workloads (their pods stop; they keep their place in the list)."""
    _act("suspend", names, project)


def resume(names: Names, project: ProjectOpt = None) -> None:
    """Resume suspended workloads."""
    _act("resume", names, project)


def delete(names: Names, project: ProjectOpt = None) -> None:
    """Delete workloads."""
    _act("delete", names, project)


# Fields of the effective spec that say how the pods are built, not what the user chose.
_DERIVED = frozenset({"pods", "minPods", "restartPolicy"})


def _decided(spec: dict, submitted: dict) -> str:
    """The plain fields policy or a default decided: in the effective spec, not as submitted."""
    return ", ".join(f"{key}={value}" for key, value in spec.items()
                     if key not in _DERIVED and isinstance(value, str | int | float | bool)
                     and submitted.get(key) != value)
