"""Evaluation: a submitted spec in, the effective spec or every violation out.

Synchronous and deterministic, no I/O: `evaluate` reads only its arguments. The policies of the
workload's branch come in already merged (`merge.merge`); they are applied first
(defaults, submitted values, rules, imposed values), then the built-in defaults and checks.

Every problem is reported at once, each with the field path the client sent (camelCase, e.g.
`spec.compute.gpuDevicesRequest`, `spec.labels[0].value`), so a 422 can name them all.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from fairway_contracts.events import PolicyEvaluateReply, PolicyEvaluateRequest, Violation
from fairway_contracts.gpu import gpu_request_problems, normal_gpu_request
from fairway_contracts.workloads import (
    NON_PREEMPTIBLE_FROM,
    PRIORITY_CLASSES,
    SCALE_TO_ZERO_METRICS,
    EffectiveSpec,
    WorkloadType,
)
from fairway_policy.core.merge import EffectivePolicy
from fairway_policy.core.rules import apply

# The priority class of a workload that names none: its type's category in Run:ai's priority
# dictionary (train, build, inference).
DEFAULT_PRIORITY_CLASS: Mapping[WorkloadType, str] = {
    WorkloadType.WORKSPACE: "build",
    WorkloadType.TRAINING: "train",
    WorkloadType.DISTRIBUTED: "train",
    WorkloadType.INFERENCE: "inference",
}
DEFAULT_BACKOFF_LIMIT = 6
# Trainings run to completion: a failed container is retried through the backoff limit, not
# restarted in place. Workspaces and inference servers are long-running: restart in place.
DEFAULT_RESTART_POLICY: Mapping[WorkloadType, str] = {
    WorkloadType.WORKSPACE: "Always",
    WorkloadType.TRAINING: "Never",
    WorkloadType.DISTRIBUTED: "Never",
    WorkloadType.INFERENCE: "Always",
}
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PREEMPTIBILITY: Mapping[str, bool] = {"preemptible": True, "non-preemptible": False}
DISTRIBUTED_FRAMEWORKS = ("MPI", "PyTorch", "TF", "XGBoost", "JAX")

# Fields of the request's spec that pass into the effective spec as given (the effective spec's
# own validation checks their shape); everything else in it is decided here.
_PASSED_THROUGH = (
    "image", "command", "args", "environmentVariables", "annotations", "labels", "compute",
    "nodePools", "nodeType", "topology", "completions", "parallelism", "distributedFramework",
    "numWorkers",
    "minReplicas", "maxReplicas", "servingPort", "autoscaling", "terminateAfterPreemption",
    "autoDeletionTimeAfterCompletionSeconds",
)
_RULE = "builtin"


def evaluate(request: PolicyEvaluateRequest,
             policy: EffectivePolicy | None = None) -> PolicyEvaluateReply:
    spec: Mapping[str, Any] = _serving_port_object(request.spec)
    ruled: list[Violation] = []
    if policy is not None:
        spec, ruled = apply(policy, spec)
    problems: list[Violation] = []

    _check_image(spec.get("image"), problems)
    _check_gpu_request(spec.get("compute"), problems)
    priority_class = _priority_class(request.workload_type, spec.get("priorityClass"), problems)
    preemptible = _preemptible(priority_class, spec.get("preemptibility"), problems)
    restart_policy = _restart_policy(request.workload_type, spec.get("restartPolicy"), problems)
    pods, min_pods = _pod_group(request.workload_type, spec, problems)

    candidate: dict[str, Any] = {k: spec[k] for k in _PASSED_THROUGH if spec.get(k) is not None}
    if isinstance(candidate.get("compute"), Mapping):
        candidate["compute"] = normal_gpu_request(candidate["compute"])
    backoff_limit = spec.get("backoffLimit")
    candidate.update(
        priorityClass=priority_class,
        preemptible=preemptible,
        backoffLimit=DEFAULT_BACKOFF_LIMIT if backoff_limit is None else backoff_limit,
        restartPolicy=restart_policy,
        pods=pods,
        minPods=min_pods,
    )
    if request.workload_type is WorkloadType.DISTRIBUTED:
        candidate.setdefault("distributedFramework", "PyTorch")
        candidate["numWorkers"] = pods - 1
        if spec.get("masterSpecSameAsWorker") is False and spec.get("masterSpec") is not None:
            candidate["masterSpec"] = spec["masterSpec"]
    try:
        effective = EffectiveSpec.model_validate(candidate)
    except ValidationError as exc:
        problems.extend(_schema_violations(exc))
        effective = None

    # Every violated policy rule is listed (a field may break several); a built-in check on a
    # field a rule already refused would only repeat it.
    named = {v.field for v in ruled}
    problems = ruled + [p for p in _one_per_field(problems) if p.field not in named]
    if problems:
        return PolicyEvaluateReply(ok=False, violations=problems)
    return PolicyEvaluateReply(ok=True, effective_spec=effective)


def _serving_port_object(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """A bare servingPort is the container port (the shape before the object): as an object,
    a policy's rules and defaults on `servingPort.*` apply to it alike."""
    port = spec.get("servingPort")
    if isinstance(port, int) and not isinstance(port, bool):
        return {**spec, "servingPort": {"container": port}}
    return spec


# checks and defaults, one per concern -------------------------------------------------------

def _violation(problems: list[Violation], field: str, message: str) -> None:
    problems.append(Violation(field=f"spec.{field}", message=message, rule=_RULE))


def _check_image(image: Any, problems: list[Violation]) -> None:
    if not isinstance(image, str) or not image.strip():
        _violation(problems, "image", "an image is required, e.g. nvcr.io/nvidia/pytorch:24.05-py3")


def _check_gpu_request(compute: Any, problems: list[Violation]) -> None:
    # Again after the policy: its defaults can meet the submitted fields (a default portion
    # and a submitted memory request).
    if not isinstance(compute, Mapping):
        return
    for field, reason in gpu_request_problems(compute):
        _violation(problems, f"compute.{field}", reason)


def _priority_class(workload_type: WorkloadType, requested: Any,
                    problems: list[Violation]) -> str:
    default = DEFAULT_PRIORITY_CLASS[workload_type]
    if requested is None:
        return default
    if requested not in PRIORITY_CLASSES:
        valid = ", ".join(sorted(PRIORITY_CLASSES, key=lambda n: (PRIORITY_CLASSES[n], n)))
        _violation(problems, "priorityClass",
                   f"unknown priority class {requested!r}; valid priority classes: {valid}")
        return default  # so the rest of the spec is still checked
    return requested


def _preemptible(priority_class: str, preemptibility: Any, problems: list[Violation]) -> bool:
    if preemptibility is None:
        return PRIORITY_CLASSES[priority_class] < NON_PREEMPTIBLE_FROM
    if preemptibility not in PREEMPTIBILITY:
        _violation(problems, "preemptibility",
                   f"unknown preemptibility {preemptibility!r}; valid: "
                   f"{', '.join(PREEMPTIBILITY)}")
        return PRIORITY_CLASSES[priority_class] < NON_PREEMPTIBLE_FROM
    return PREEMPTIBILITY[preemptibility]


def _restart_policy(workload_type: WorkloadType, requested: Any,
                    problems: list[Violation]) -> str:
    if requested is None:
        return DEFAULT_RESTART_POLICY[workload_type]
    if requested not in RESTART_POLICIES:
        _violation(problems, "restartPolicy",
                   f"unknown restart policy {requested!r}; valid: {', '.join(RESTART_POLICIES)}")
        return DEFAULT_RESTART_POLICY[workload_type]
    return requested


def _pod_group(workload_type: WorkloadType, spec: Mapping[str, Any],
               problems: list[Violation]) -> tuple[int, int]:
    """(pods in the gang, the gang minimum) for the workload type."""
    if workload_type is WorkloadType.DISTRIBUTED:
        return _distributed_pods(spec, problems)
    if workload_type is WorkloadType.INFERENCE:
        return _inference_replicas(spec.get("autoscaling"), problems)
    if workload_type is WorkloadType.TRAINING:
        # `parallelism` pods run at once until `completions` have succeeded; each pod stands
        # alone (no gang beyond one).
        return _count(spec.get("parallelism"), "parallelism", problems), 1
    return 1, 1


def _inference_replicas(autoscaling: Any, problems: list[Violation]) -> tuple[int, int]:
    """An inference server starts with `minReplicas` replicas (one when it may scale to zero),
    and the minimum is one gang: the scheduler places it whole; replicas the autoscaler adds
    above it are elastic, placed when there is room and taken back first."""
    if not isinstance(autoscaling, Mapping):
        return 1, 1
    replicas = autoscaling.get("minReplicas")
    if replicas == 0 and autoscaling.get("metric") in SCALE_TO_ZERO_METRICS:
        return 1, 1
    if replicas == 0:
        _violation(problems, "autoscaling.minReplicas",
                   "may be 0 (scale to zero) only with metric throughput or concurrency; "
                   f"got metric {autoscaling.get('metric')!r}")
        return 1, 1
    count = _count(replicas, "autoscaling.minReplicas", problems)
    return count, count


def _count(value: Any, field: str, problems: list[Violation]) -> int:
    """A count of pods from the spec: 1 when unset, or (with a violation) when not a whole
    number of at least 1."""
    if value is None:
        return 1
    if not _is_count(value, at_least=1):
        _violation(problems, field, "must be a whole number of at least 1")
        return 1
    return value


def _distributed_pods(spec: Mapping[str, Any], problems: list[Violation]) -> tuple[int, int]:
    """The master and `numWorkers` workers; elastic (`minReplicas`): the gang's minimum is the
    master and `minReplicas` workers, the rest join when there is room. `numWorkers` defaults
    to `maxReplicas` (as far as the workload may grow), else one."""
    framework = spec.get("distributedFramework")
    if framework is not None and framework not in DISTRIBUTED_FRAMEWORKS:
        _violation(problems, "distributedFramework",
                   f"unknown framework {framework!r}; valid: {', '.join(DISTRIBUTED_FRAMEWORKS)}")
    if spec.get("masterSpecSameAsWorker") is False and spec.get("masterSpec") is None:
        _violation(problems, "masterSpec",
                   "is required when masterSpecSameAsWorker is false (the master's image, "
                   "command, environment or compute)")
    max_replicas = spec.get("maxReplicas")
    if max_replicas is not None and not _is_count(max_replicas, at_least=1):
        _violation(problems, "maxReplicas", "must be a whole number of at least 1")
        max_replicas = None
    workers = spec.get("numWorkers", max_replicas or 1)
    if not _is_count(workers, at_least=1):
        _violation(problems, "numWorkers", "must be a whole number of at least 1")
        workers = 1
    if max_replicas is not None and workers > max_replicas:
        _violation(problems, "numWorkers", f"must be at most maxReplicas ({max_replicas})")
    pods = 1 + workers  # the master and its workers start together
    min_replicas = spec.get("minReplicas")
    if min_replicas is None:
        return pods, pods
    if not _is_count(min_replicas, at_least=1) or min_replicas > workers:
        _violation(problems, "minReplicas",
                   f"must be a whole number between 1 and numWorkers ({workers})")
        return pods, pods
    return pods, 1 + min_replicas


def _is_count(value: Any, *, at_least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= at_least


def _schema_violations(exc: ValidationError) -> list[Violation]:
    return [
        Violation(field=_path(("spec", *error["loc"])), message=error["msg"], rule=_RULE)
        for error in exc.errors(include_url=False)
    ]


def _path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _one_per_field(problems: list[Violation]) -> list[Violation]:
    # A field the explicit checks already explained is not repeated by the schema check.
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if problem.field not in seen:
            seen.add(problem.field)
            unique.append(problem)
    return unique
