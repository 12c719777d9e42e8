"""Cluster profiles shipped with kubesim."""

from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE: Path = PROFILES_DIR / "default.yaml"

__all__ = ["DEFAULT_PROFILE", "PROFILES_DIR"]
