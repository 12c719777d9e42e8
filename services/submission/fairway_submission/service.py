"""`SubmissionService`, the one object that runs submission: the runtime, the settings, the
token keys, the login limiter, the other services' heartbeats, and how it reaches the other
services (its `Peers`). Routes get it through FastAPI's `Depends` (see `dependencies`); the
NATS handlers are registered on it."""

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import asyncpg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fairway_bus import MessageTooLarge, NoReply, connection, request
from fairway_contracts import streams, subjects
from fairway_contracts.base import Contract
from fairway_contracts.events import (
    NodeInventory,
    PhaseApplied,
    PhaseChanged,
    PhasesApplied,
    PolicyEvaluateReply,
    PolicyEvaluateRequest,
    SchedulingCycle,
    ThirdPartyWorkloadChanged,
    WorkloadSubmitted,
)
from fairway_contracts.workloads import EffectiveSpec, WorkloadType
from fairway_runtime import Service
from fairway_store import add_to_outbox
from fairway_submission import repository as repo
from fairway_submission.cache import MISSING, Remembered
from fairway_submission.console.live import PhaseFeed, newest_per_workload
from fairway_submission.core.access import SYSTEM_ADMIN, Grants, Rule
from fairway_submission.core.errors import ApiError
from fairway_submission.core.health import Heartbeats
from fairway_submission.identity.auth import (
    LoginLimiter,
    Principal,
    Tokens,
    hash_password,
    new_password,
    too_many_logins,
    write_admin_files,
)
from fairway_submission.org.events import publish_everything
from fairway_submission.settings import SubmissionSettings
from fairway_submission.workloads.logs import PodLogs

log = logging.getLogger("fairway.submission")

# Bounds on what is remembered between requests (see `cache`): callers (by token), projects,
# the policy service's answers (by spec).
REMEMBERED_CALLERS = 10_000
REMEMBERED_PROJECTS = 10_000
REMEMBERED_EVALUATIONS = 1_000

ADMIN = "admin"
METRICS_TIMEOUT_SECONDS = 5.0

# A request to another service: subject and payload in, the reply's payload out; NoReply when
# none comes.
Ask = Callable[[str, bytes], Awaitable[bytes]]
Peer = Literal["policy", "metrics"]


@dataclass
class Peers:
    """How submission reaches the other services. Built over NATS by default; unit tests put
    in-process stand-ins here (see `testing`)."""

    policy: Ask
    metrics: Ask
    # Every node's last inventory message (the INVENTORY stream lifecycle publishes).
    read_inventory: Callable[[], Awaitable[list[NodeInventory]]]


@dataclass(frozen=True)
class ProjectView:
    """What a submission reads of the organisation: the project (None: no such project), its
    department, and every node pool's name."""

    project: asyncpg.Record | None
    department: asyncpg.Record | None
    node_pools: frozenset[str]
    # each node pool's network topology levels (the widest first; empty: none)
    topologies: Mapping[str, list[str]] = field(default_factory=dict)


class SubmissionService:
    def __init__(self, runtime: Service, settings: SubmissionSettings,
                 peers: Peers | None = None):
        self.runtime = runtime
        self.settings = settings
        self.heartbeats = Heartbeats(settings.heartbeat_seconds)
        self.limiter = LoginLimiter(settings.login_max_failures, settings.login_window_seconds,
                                    settings.login_client_max_failures,
                                    settings.login_client_pace_seconds)
        self.trusted_proxies = settings.trusted_proxy_networks()
        self._tokens: Tokens | None = None  # the key is read from the database at start
        ttl = settings.remember_seconds
        # token hash -> (the token's expiry, seconds since the epoch; the caller's access)
        self.callers: Remembered[bytes, tuple[float, Grants]] = Remembered(
            ttl, REMEMBERED_CALLERS)
        self.projects: Remembered[str, ProjectView] = Remembered(ttl, REMEMBERED_PROJECTS)
        self.evaluations: Remembered[tuple, PolicyEvaluateReply] = Remembered(
            ttl, REMEMBERED_EVALUATIONS)
        self.pod_logs = PodLogs(settings.kubeconfig, settings.log_streams)
        # The console's browsers on this replica, told of each phase change the view commits.
        self.phase_feed = PhaseFeed()
        # The scheduler's last cycle that ran, as it announced it (None: none heard yet).
        self.last_cycle: SchedulingCycle | None = None
        self.peers = peers or Peers(
            policy=self._over_nats(settings.policy_timeout_seconds),
            metrics=self._over_nats(METRICS_TIMEOUT_SECONDS),
            read_inventory=self._read_inventory)

    # what routes use -------------------------------------------------------------------
    @property
    def pool(self) -> asyncpg.Pool:
        if self.runtime.pool is None:
            raise ApiError(503, "the service is starting", headers={"Retry-After": "2"})
        return self.runtime.pool

    @property
    def tokens(self) -> Tokens:
        if self._tokens is None:
            raise ApiError(503, "the service is starting", headers={"Retry-After": "2"})
        return self._tokens

    async def caller(self, authorization: str | None) -> Grants:
        """The caller's access rules: a deleted user's or service account's token stops
        working, and a changed rule applies, from the next request when the change came through
        this API, within `remember_seconds` otherwise (see `cache`)."""
        key = hashlib.sha256(authorization.encode()).digest() if authorization else b""
        known = self.callers.get(key)
        if known is not MISSING and known[0] > time.time():
            return known[1]
        principal = self.tokens.verify(authorization)
        return (await self.callers.read(key, lambda: self._read_caller(principal)))[1]

    async def _read_caller(self, principal: Principal) -> tuple[float, Grants]:
        async with self.pool.acquire() as conn:
            if not await repo.subject_exists(conn, principal.kind, principal.subject):
                raise ApiError(401, "the token's user or service account no longer exists",
                               headers={"WWW-Authenticate": "Bearer"})
            rows = await repo.rules_of(conn, principal.kind, principal.subject)
            departments = await repo.project_departments(conn)
        rules = tuple(Rule(r["role_name"], r["scope_type"], r["scope_id"]) for r in rows)
        return principal.expires_at, Grants(principal.subject, principal.kind, rules,
                                            departments)

    async def project(self, project_id: str) -> ProjectView:
        """A project as a submission needs it: its row (None when it does not exist), its
        department's and the node pools' names; remembered like the caller's access."""
        return await self.projects.read(project_id, lambda: self._read_project(project_id))

    async def _read_project(self, project_id: str) -> ProjectView:
        async with self.pool.acquire() as conn:
            project = await repo.get_project(conn, project_id)
            pools = await repo.node_pool_topologies(conn)
            department = (await repo.get_department(conn, str(project["department_id"]))
                          if project is not None else None)
        return ProjectView(project, department, frozenset(pools), pools)

    async def announce_applied(self, events: list[PhaseChanged]) -> None:
        """Tell every API replica's console browsers of transitions the view has committed
        (each workload's newest). Best effort, like the scheduler's cycle news: a browser that
        missed one is set right by its next reconnect, when it reads its table again."""
        changes = [PhaseApplied(workload_id=e.workload_id, project=e.project,
                                workload_type=e.workload_type, sequence=e.sequence,
                                phase=e.phase, reason=e.reason, message=e.message)
                   for e in newest_per_workload(events)]
        if not changes:
            return
        try:
            await connection(self.runtime.broker).publish(
                subjects.VIEW_PHASES_APPLIED, PhasesApplied(changes=changes).to_json())
        except Exception as exc:
            log.debug("phase news not announced: %r", exc)

    def forget(self) -> None:
        """Something a caller's access, a project or a policy depends on may have changed."""
        self.callers.forget()
        self.projects.forget()
        self.evaluations.forget()

    async def login_turn(self, name: str, client: str) -> None:
        """Let a login attempt of `name` from `client` go on, counted as failed until it
        succeeds (after its turn if the client is past its cap across names), or answer 429."""
        limits = self.limiter
        async with self.pool.acquire() as conn:
            failures = await repo.begin_login_attempt(conn, name, client, limits.window)
            try:
                limits.check_pair(failures.of_pair, failures.oldest_age_seconds)
                wait = None
                if limits.paced(failures.of_client):
                    wait = await repo.take_login_turn(conn, client, limits.client_pace,
                                                      limits.MAX_TURN_WAIT_SECONDS)
                    if wait is None:
                        raise too_many_logins(limits.MAX_TURN_WAIT_SECONDS)
            except ApiError:
                await repo.withdraw_login_attempt(conn, failures.attempt)
                raise
        if wait:
            await asyncio.sleep(wait)

    async def login_succeeded(self, name: str, client: str) -> None:
        async with self.pool.acquire() as conn:
            await repo.forget_login_failures(conn, name, client)

    async def ask(self, peer: Peer, subject: str, message: Contract) -> bytes:
        """Ask another service and wait for its answer; 503 when none comes."""
        ask = self.peers.policy if peer == "policy" else self.peers.metrics
        try:
            return await ask(subject, message.to_json())
        except MessageTooLarge as exc:
            raise ApiError(413, f"the request is too large to pass to the {peer} service: "
                                f"{exc.size:,} bytes, and the message bus carries at most "
                                f"{exc.limit:,}") from None
        except NoReply as exc:
            reason = (f"the {peer} service did not answer" if exc.connected
                      else "the message broker is not reachable")
            raise ApiError(503, f"{reason}; try again shortly",
                           headers={"Retry-After": "2"}) from None

    async def evaluate_policy(self, evaluate: PolicyEvaluateRequest) -> PolicyEvaluateReply:
        """The policy service's answer. An accepted spec's answer is remembered for the same
        spec in the same branch (policy's answer does not depend on the workload's name), and
        forgotten with everything else when a policy changes through this API."""
        key = (evaluate.workload_type, evaluate.project, evaluate.project_id,
               evaluate.department_id, json.dumps(evaluate.spec, sort_keys=True))

        async def ask() -> PolicyEvaluateReply:
            return PolicyEvaluateReply.model_validate_json(
                await self.ask("policy", subjects.POLICY_EVALUATE, evaluate))

        return await self.evaluations.read(key, ask, keep=lambda reply: reply.ok)

    # start -----------------------------------------------------------------------------
    async def bootstrap(self) -> None:
        """The token key, the bootstrap administrator, the default project, and the whole
        organisation published as it is now."""
        settings = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            secret = settings.token_secret or await repo.put_setting_if_absent(
                conn, "token_secret", secrets.token_urlsafe(48))
            self._tokens = Tokens(secret, settings.token_ttl_seconds)
            password = new_password()
            created = await repo.create_user(conn, ADMIN, hash_password(password), SYSTEM_ADMIN)
            await repo.create_rule(conn, subject_type="user", subject_id=ADMIN,
                                   role_name=SYSTEM_ADMIN, scope_type="cluster", scope_id="",
                                   created_by="bootstrap")
            await repo.ensure_project(conn, settings.default_project)
            # The whole organisation, as it is now, on every start: the ORG stream keeps the
            # last message per unit, so consumers always find the current state there.
            await publish_everything(conn)
        if settings.write_admin_files:
            token, _ = self._tokens.issue(ADMIN, "user", settings.admin_token_ttl_seconds)
            write_admin_files(settings.state_dir, f"http://127.0.0.1:{settings.http_port}",
                              ADMIN, password if created else None, token)
        if created:
            log.info("created the bootstrap administrator; credentials in %s",
                     settings.state_dir / "admin.json")

    # over NATS -------------------------------------------------------------------------
    def _over_nats(self, timeout: float) -> Ask:
        async def ask(subject: str, data: bytes) -> bytes:
            return await request(connection(self.runtime.broker), subject, data,
                                 timeout=timeout)

        return ask

    async def third_party_changed(self, event: ThirdPartyWorkloadChanged) -> None:
        """Show a third-party workload in the view: in the project its namespace (or pod)
        names, or in none with the reason when there is no such project."""
        async with self.pool.acquire() as conn, conn.transaction():
            project = await repo.project_named(conn, event.project) if event.project else None
            problem = event.problem
            if event.project and project is None:
                problem = (f"namespace {event.namespace} names project {event.project}, which "
                           "does not exist: create it, or label the namespace with another")
            await repo.apply_third_party(conn, event, project, problem)
            if project is None or event.gone or event.problem:
                return  # nothing the scheduler can place (yet)
            # its request for the scheduler (lifecycle makes no pods for it): once, and again
            # with the next revision when a scale changes its pods or its minimum
            pods, min_pods = third_party_size(event)
            revision = await repo.third_party_to_submit(
                conn, event.workload_id, {"pods": pods, "minPods": min_pods})
            if revision is not None:
                submitted = third_party_request(event, project, revision)
                await add_to_outbox(
                    conn, subjects.workload_submitted(project["name"], event.workload_id),
                    submitted, msg_id=submitted.event_id)

    async def _read_inventory(self) -> list[NodeInventory]:
        """Every node's last inventory message, read with a short-lived consumer."""
        sub = await self.runtime.js.pull_subscribe(
            subjects.INVENTORY_ALL, stream=streams.INVENTORY.name,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                                  ack_policy=AckPolicy.NONE, inactive_threshold=10.0))
        nodes: dict[str, NodeInventory] = {}
        try:
            while True:
                try:
                    batch = await sub.fetch(500, timeout=0.5)
                except TimeoutError:
                    break
                for msg in batch:
                    node = NodeInventory.model_validate_json(msg.data)
                    nodes[node.name] = node
                if batch and batch[-1].metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return [n for n in nodes.values() if not n.deleted]


def third_party_size(event: ThirdPartyWorkloadChanged) -> tuple[int, int]:
    """A third-party workload's pods (what its owner wants now, else the pods it has; a gang
    waits for every member: at least `minMembers`) and its minimum (1 for pods one by one)."""
    wanted = event.replicas if event.replicas is not None else len(event.pods)
    pods = max(wanted, event.min_members, 1)
    return pods, (min(event.min_members, pods) if event.grouping != "single" else 1)


def third_party_request(event: ThirdPartyWorkloadChanged, project: asyncpg.Record,
                        revision: int = 0) -> WorkloadSubmitted:
    """What a third-party workload asks of the scheduler: its pods and minimum, what each
    asks for, its priority and preemptibility; `revision` > 0: again, after a scale."""
    spec = repo.third_party_spec(event)
    pods, min_pods = third_party_size(event)
    return WorkloadSubmitted(
        event_id=f"sub:{event.workload_id}" + (f":r{revision}" if revision else ""),
        revision=revision, workload_id=event.workload_id, name=event.name,
        project=project["name"], project_id=str(project["id"]),
        workload_type=WorkloadType.TRAINING, created_at=event.observed_at,
        created_by=f"kubernetes:{event.namespace}", third_party=True,
        spec=EffectiveSpec(image=f"{event.kind}/{event.name}", compute=spec["compute"],
                           priority_class=event.priority_class, preemptible=event.preemptible,
                           backoff_limit=0, pods=pods, min_pods=min_pods))
