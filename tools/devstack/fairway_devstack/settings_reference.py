"""The configuration reference of docs/operations.md, generated from the settings classes.

`python -m fairway_devstack.settings_reference [docs/operations.md]` (`make settings-doc`)
rewrites the part of the file between the two markers; `--check` only says whether it is up to
date (exit 1 when not). Per section: each variable, its type, default, description and the
deprecated names still accepted. A field without a description is an error: the reference is
only as good as the descriptions in the classes.
"""

import argparse
import sys
import types
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from fairway_bus.bootstrap import BootstrapSettings
from fairway_lifecycle.settings import LifecycleSettings
from fairway_metrics.settings import MetricsSettings
from fairway_policy.settings import PolicySettings
from fairway_runtime.settings import ServiceSettings, variable_of
from fairway_scheduler.settings import SchedulerSettings
from fairway_submission.create_admin import CreateAdminSettings
from fairway_submission.settings import SubmissionSettings

START = "<!-- settings-reference:start -->"
END = "<!-- settings-reference:end -->"
DOCUMENT = Path("docs/operations.md")

# (heading, settings class, what the section says before its table)
SECTIONS: tuple[tuple[str, type[BaseSettings], str], ...] = (
    ("Every service", ServiceSettings,
     "Read by all five services (`fairway_runtime.ServiceSettings`); a service's own section "
     "lists what it adds or reads differently."),
    ("submission", SubmissionSettings, ""),
    ("policy", PolicySettings, ""),
    ("scheduler", SchedulerSettings, ""),
    ("lifecycle", LifecycleSettings, ""),
    ("metrics", MetricsSettings, ""),
    ("bus bootstrap", BootstrapSettings,
     "Read by `python -m fairway_bus.bootstrap`, which makes the streams and consumers."),
    ("creating an administrator", CreateAdminSettings,
     "Read by `python -m fairway_submission.create_admin USER`."),
)

_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"),
           (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "≤"))


def own_fields(settings: type[BaseSettings]) -> dict[str, FieldInfo]:
    """The fields a service's class adds to the shared ones, or declares again differently."""
    fields = settings.model_fields
    if settings is ServiceSettings or not issubclass(settings, ServiceSettings):
        return dict(fields)
    shared = ServiceSettings.model_fields
    return {name: field for name, field in fields.items()
            if name not in shared or _described(name, field) != _described(name, shared[name])}


def _described(name: str, field: FieldInfo) -> tuple:
    return (variable_of(name, field), field.annotation, field.default, field.description)


def undescribed() -> list[str]:
    """'Class.field' of every field (shared or a service's) that has no description."""
    return [f"{settings.__name__}.{name}"
            for _, settings, _ in SECTIONS
            for name, field in own_fields(settings).items()
            if not (field.description or "").strip()]


def type_name(annotation: Any) -> str:
    """int, float, path, text, true/false, one of a few words; `optional` when it may be unset."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        present = [a for a in get_args(annotation) if a is not type(None)]
        return " or ".join(type_name(a) for a in present) + ", optional"
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in get_args(annotation))
    names = {bool: "true/false", int: "integer", float: "number", str: "text", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def bounds(field: FieldInfo) -> str:
    """' > 0', ' ≥ 0' … from the field's constraints."""
    found = []
    for item in field.metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                found.append(f" {sign} {_plain(getattr(item, attribute))}")
    return "".join(found)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "unset"
    return f"`{_plain(field.default)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def table_rows(settings: type[BaseSettings]) -> Iterator[str]:
    for name, field in own_fields(settings).items():
        variable = variable_of(name, field)
        deprecated = ", ".join(f"`{old}`" for old in variable.deprecated)
        yield (f"| `{variable.name}` | {type_name(field.annotation)}{bounds(field)} | "
               f"{default_text(field)} | {_cell(field.description or '')} | {deprecated} |")


def render() -> str:
    """The generated section, markers included."""
    missing = undescribed()
    if missing:
        raise ValueError(f"settings without a description: {', '.join(missing)}")
    lines = [START,
             "<!-- generated by `make settings-doc` from the settings classes: edit their "
             "descriptions, not this table -->"]
    for heading, settings, intro in SECTIONS:
        lines += ["", f"### {heading}", ""]
        if intro:
            lines += [intro, ""]
        if not own_fields(settings):
            lines.append("Only the settings every service reads.")
            continue
        lines += ["| variable | type | default | description | deprecated names |",
                  "|---|---|---|---|---|", *table_rows(settings)]
    lines += ["", END]
    return "\n".join(lines)


def replaced(document: str, section: str) -> str:
    """The document with the text between (and including) the markers replaced."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {START} … {END} section")
    return document[:start] + section + document[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", nargs="?", type=Path, default=DOCUMENT)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the committed reference differs from the generated one")
    args = parser.parse_args(argv)
    current = args.document.read_text()
    wanted = replaced(current, render())
    if args.check:
        if wanted != current:
            print(f"{args.document}: the configuration reference is out of date; run "
                  "`make settings-doc`", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.document.write_text(wanted)
        print(f"{args.document}: configuration reference updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
