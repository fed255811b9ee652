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
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
_CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1: cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us


def _quota(cgroup_cpu_max: Path, cgroup_v1_cpu: Path) -> int | None:
    """CPUs the cgroup's quota allows (rounded up), or None without a quota."""
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        return None if quota == "max" else math.ceil(int(quota) / int(period))
    except (OSError, ValueError):
        pass
    try:
        quota = int((cgroup_v1_cpu / "cpu.cfs_quota_us").read_text())
        period = int((cgroup_v1_cpu / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else math.ceil(quota / period)
    except (OSError, ValueError):
        return None


def physical_cores(sys_cpu: Path = _SYS_CPU, cgroup_cpu_max: Path = _CGROUP_CPU_MAX,
                   cgroup_v1_cpu: Path = _CGROUP_V1_CPU) -> int:
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
    quota = _quota(cgroup_cpu_max, cgroup_v1_cpu)
    return max(1, min(len(cores), quota) if quota is not None else len(cores))
