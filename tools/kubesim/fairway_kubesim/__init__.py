"""kubesim: a simulated GPU cluster behind the real Kubernetes API.

    from fairway_kubesim import KubeSim, DEFAULT_PROFILE, write_kubeconfig

    async with KubeSim(DEFAULT_PROFILE, port=0) as sim:
        write_kubeconfig("kubeconfig", sim.url)

See `fairway_kubesim.server` for the in-loop `KubeSim` and the threaded `KubeSimThread`, and
`python -m fairway_kubesim --help` for the command line.
"""

from .profile import NodePool, NodeSpec, Profile, ProfileError, Timings, load_profile
from .profiles import DEFAULT_PROFILE, LARGE_PROFILE
from .server import KubeSim, KubeSimThread, write_kubeconfig

__all__ = [
    "DEFAULT_PROFILE",
    "LARGE_PROFILE",
    "KubeSim",
    "KubeSimThread",
    "NodePool",
    "NodeSpec",
    "Profile",
    "ProfileError",
    "Timings",
    "load_profile",
    "write_kubeconfig",
]
