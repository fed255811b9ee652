"""The default thread count: physical cores within the process's affinity and its cgroup quota."""

import os

import pytest

from translator.cpu_cores import physical_cores


def _topology(root, cpus: dict[int, tuple[int, int]]):
    """A fake /sys/devices/system/cpu: cpu id -> (package, core)."""
    for cpu, (package, core) in cpus.items():
        t = root / f"cpu{cpu}" / "topology"
        t.mkdir(parents=True)
        (t / "physical_package_id").write_text(f"{package}\n")
        (t / "core_id").write_text(f"{core}\n")
    return root


@pytest.fixture
def four_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)


def test_hyperthreads_count_once(tmp_path, four_cpus):
    sys_cpu = _topology(tmp_path / "cpu", {0: (0, 0), 1: (0, 0), 2: (0, 1), 3: (0, 1)})
    assert physical_cores(sys_cpu, tmp_path / "none", tmp_path / "none") == 2


def test_cores_of_two_packages_with_the_same_core_id_are_distinct(tmp_path, four_cpus):
    sys_cpu = _topology(tmp_path / "cpu", {0: (0, 0), 1: (1, 0), 2: (0, 1), 3: (1, 1)})
    assert physical_cores(sys_cpu, tmp_path / "none", tmp_path / "none") == 4


def test_only_cpus_of_the_affinity_count(tmp_path, monkeypatch):
    sys_cpu = _topology(tmp_path / "cpu", {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (0, 3)})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1, 3}, raising=False)
    assert physical_cores(sys_cpu, tmp_path / "none", tmp_path / "none") == 2


def test_a_cgroup_quota_caps_the_count(tmp_path, four_cpus):
    sys_cpu = _topology(tmp_path / "cpu", {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (0, 3)})
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs: 2 threads
    assert physical_cores(sys_cpu, quota, tmp_path / "none") == 2
    quota.write_text("max 100000\n")
    assert physical_cores(sys_cpu, quota, tmp_path / "none") == 4


def test_a_cgroup_v1_quota_caps_the_count(tmp_path, four_cpus):
    sys_cpu = _topology(tmp_path / "cpu", {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (0, 3)})
    v1 = tmp_path / "cgroup-cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    assert physical_cores(sys_cpu, tmp_path / "none", v1) == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert physical_cores(sys_cpu, tmp_path / "none", v1) == 4


def test_unknown_topology_counts_each_cpu(tmp_path, four_cpus):
    assert physical_cores(tmp_path / "missing", tmp_path / "none", tmp_path / "none") == 4
