"""Who may do what, where: the seven roles, their permissions and scope inheritance.

Pure: a caller's access rules and the organisation's shape come in as values. A rule on a scope
covers everything below it (cluster > department > project). Outside every scope a caller holds
a thing does not exist for them (404); inside, an action no role of theirs allows is 403.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fairway_submission.core.errors import ApiError


class Perm(StrEnum):
    ORG_VIEW = "org:view"              # departments and projects in scope
    ORG_EDIT = "org:edit"              # create / change / delete departments and projects
    ACCESS_EDIT = "access:edit"        # access rules in scope
    CLUSTER_ADMIN = "cluster:admin"    # node pools, users, service accounts
    WORKLOAD_VIEW = "workload:view"
    WORKLOAD_CREATE = "workload:create"
    WORKLOAD_MANAGE = "workload:manage"  # suspend, resume, delete
    INFERENCE_VIEW = "inference:view"
    INFERENCE_CREATE = "inference:create"
    INFERENCE_MANAGE = "inference:manage"


SYSTEM_ADMIN = "System administrator"
ROLES: Mapping[str, frozenset[Perm]] = {
    SYSTEM_ADMIN: frozenset(Perm),
    "Department administrator": frozenset({
        Perm.ORG_VIEW, Perm.ORG_EDIT, Perm.ACCESS_EDIT, Perm.WORKLOAD_VIEW,
        Perm.WORKLOAD_CREATE, Perm.WORKLOAD_MANAGE}),
    "Research manager": frozenset({Perm.ORG_VIEW, Perm.WORKLOAD_VIEW}),
    "L1 researcher": frozenset({Perm.ORG_VIEW, Perm.WORKLOAD_VIEW, Perm.WORKLOAD_CREATE,
                                Perm.WORKLOAD_MANAGE}),
    "L2 researcher": frozenset({Perm.ORG_VIEW, Perm.WORKLOAD_VIEW, Perm.WORKLOAD_MANAGE}),
    "ML engineer": frozenset({Perm.ORG_VIEW, Perm.INFERENCE_VIEW, Perm.INFERENCE_CREATE,
                              Perm.INFERENCE_MANAGE}),
    "Viewer": frozenset({Perm.ORG_VIEW, Perm.WORKLOAD_VIEW}),
}

# A workload action needs the general permission, or the inference one for inferences.
_INFERENCE_EQUIVALENT = {Perm.WORKLOAD_VIEW: Perm.INFERENCE_VIEW,
                         Perm.WORKLOAD_CREATE: Perm.INFERENCE_CREATE,
                         Perm.WORKLOAD_MANAGE: Perm.INFERENCE_MANAGE}


@dataclass(frozen=True)
class Rule:
    role: str
    scope_type: str
    scope_id: str = ""


@dataclass(frozen=True)
class Grants:
    """A caller's rules. `departments` maps project id → department id (both strings)."""

    subject: str
    kind: str
    rules: tuple[Rule, ...]
    departments: Mapping[str, str] = field(default_factory=dict)

    def roles_at(self, department_id: str | None = None, project_id: str | None = None
                 ) -> set[str]:
        """The roles that cover a scope: the cluster, a department, or a project (whose
        department is looked up when not given)."""
        if project_id is not None and department_id is None:
            department_id = self.departments.get(project_id)
        roles = set()
        for rule in self.rules:
            if (rule.scope_type == "cluster"
                    or (rule.scope_type == "department" and department_id is not None
                        and rule.scope_id == department_id)
                    or (rule.scope_type == "project" and project_id is not None
                        and rule.scope_id == project_id)):
                roles.add(rule.role)
        return roles

    def perms_at(self, department_id: str | None = None, project_id: str | None = None
                 ) -> set[Perm]:
        return {p for role in self.roles_at(department_id, project_id)
                for p in ROLES.get(role, ())}

    def at_cluster(self) -> set[Perm]:
        return {p for rule in self.rules if rule.scope_type == "cluster"
                for p in ROLES.get(rule.role, ())}

    def anywhere(self) -> set[Perm]:
        return {p for rule in self.rules for p in ROLES.get(rule.role, ())}

    # checks that raise ---------------------------------------------------------------------
    def require_cluster(self, perm: Perm = Perm.CLUSTER_ADMIN) -> None:
        if perm not in self.at_cluster():
            raise ApiError(403, f"{self.subject} may not do this: it needs {perm.value} on the "
                                "cluster (System administrator)")

    def require(self, perm: Perm, *, what: str, department_id: str | None = None,
                project_id: str | None = None) -> None:
        """404 when the scope is outside every rule, 403 when no role there allows `perm`."""
        perms = self.perms_at(department_id, project_id)
        if not self.roles_at(department_id, project_id):
            raise ApiError(404, f"{what} does not exist")
        if perm not in perms:
            raise ApiError(403, f"{self.subject} may not {_verb(perm)} {what}")

    def require_workload(self, perm: Perm, workload_type: str, project_id: str, *,
                         what: str) -> None:
        perms = self.perms_at(project_id=project_id)
        if not self.roles_at(project_id=project_id):
            raise ApiError(404, f"{what} does not exist")
        if not workload_allows(perms, perm, workload_type):
            if perm is Perm.WORKLOAD_VIEW:
                raise ApiError(404, f"{what} does not exist")
            raise ApiError(403, f"{self.subject} may not {_verb(perm)} {what}")

    # what a list shows ---------------------------------------------------------------------
    def workload_scopes(self, projects: Iterable[str]) -> tuple[list[str], list[str]]:
        """(projects whose every workload the caller may see, projects where only
        inferences)."""
        every, inference_only = [], []
        for project in projects:
            perms = self.perms_at(project_id=project)
            if Perm.WORKLOAD_VIEW in perms:
                every.append(project)
            elif Perm.INFERENCE_VIEW in perms:
                inference_only.append(project)
        return every, inference_only


def workload_allows(perms: set[Perm], perm: Perm, workload_type: str) -> bool:
    if perm in perms:
        return True
    return workload_type == "inference" and _INFERENCE_EQUIVALENT.get(perm) in perms


def _verb(perm: Perm) -> str:
    return {Perm.ORG_EDIT: "change", Perm.ACCESS_EDIT: "manage access to",
            Perm.WORKLOAD_CREATE: "create workloads in", Perm.INFERENCE_CREATE:
            "create workloads in", Perm.WORKLOAD_MANAGE: "manage",
            Perm.INFERENCE_MANAGE: "manage"}.get(perm, "see")
