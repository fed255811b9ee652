"""How many CPU threads the model should use by default: the physical cores this process may run on.

llama.cpp's threads spin while they wait for each other, so more threads than cores (hyperthreads, or a
container's CPU quota below the host's core count) make every step slower, not faster; fewer threads than
cores leave speed unused (measured on this project's 2-core machine with the default model: 2 threads
prefill 1.7x and decode 1.4x faster than 1 when nothing else runs). On a machine shared with other busy
jobs, pass a smaller ``--threads``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_SYS_CPU = Path("/sys/devices/system/cpu")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def physical_cores(sys_cpu: Path = _SYS_CPU, cgroup_cpu_max: Path = _CGROUP_CPU_MAX) -> int:
    """Physical cores among the CPUs this process may use (its affinity), at most its cgroup's CPU quota;
    at least 1. Where the topology cannot be read (not Linux), the usable CPU count."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = sys_cpu / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))  # unknown topology: count the CPU as a core of its own
    count = len(cores)
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)
