"""The user's CLI configuration: API address, access token, current project.

One JSON file, readable by its owner only (0600): `$FAIRWAY_CONFIG`, else
`$XDG_CONFIG_HOME/fairway/config.json`, else `~/.config/fairway/config.json`.
"""

import json
import os
from pathlib import Path
from typing import Any


def path() -> Path:
    if explicit := os.environ.get("FAIRWAY_CONFIG"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fairway" / "config.json"


def load() -> dict[str, Any]:
    p = path()
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(data: dict[str, Any]) -> Path:
    p = path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)
    return p


def update(**changes: Any) -> Path:
    data = load()
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return save(data)
