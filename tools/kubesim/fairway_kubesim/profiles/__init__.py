"""Cluster profiles shipped with kubesim."""

from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE: Path = PROFILES_DIR / "default.yaml"
LARGE_PROFILE: Path = PROFILES_DIR / "large-5000.yaml"  # 5,000 nodes x 8 GPUs, two pools

__all__ = ["DEFAULT_PROFILE", "LARGE_PROFILE", "PROFILES_DIR"]
