"""A mount whose statfs hangs, under the daemon as a user starts it: only that mount's figures go.

The hung mount is a real FUSE filesystem served by the test, whose statfs is held
unanswered the way a dead NFS server holds it; the daemon runs in its own mount
and pid namespaces with it mounted, so nothing else on the machine stats it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.binaries import require
from tests.support.daemon import Daemon
from tests.support.servers import FuseFilesystem, fuse_namespace_wrapper


def fs_value(families: dict[str, Any], name: str, mountpoint: Path) -> float | None:
    for s in families[name].samples if name in families else ():
        if s.labels.get("mountpoint") == str(mountpoint):
            return float(s.value)
    return None


def test_a_hung_mount_costs_only_its_own_figures_and_comes_back(
        daemon_factory: Callable[..., Daemon], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require("unshare")
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("needs /dev/fuse and root to mount a FUSE filesystem")
    program = shutil.which("apm-exporter")
    assert program is not None
    hung_point, good_point = tmp_path / "hung", tmp_path / "good"
    hung_point.mkdir()
    good_point.mkdir()
    hung, good = FuseFilesystem("apmhung", hang=True), FuseFilesystem("apmgood")
    folder = tmp_path / "bin"
    folder.mkdir()
    fuse_namespace_wrapper(folder, {hung_point: hung, good_point: good}, program)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")  # `apm-exporter` is now the wrapper
    size = float(FuseFilesystem.BLOCKS * FuseFilesystem.BLOCK_SIZE)
    try:
        daemon = daemon_factory({"statsd": {"listeners": []}, "collectors": {
            "host": {"filesystems": {"mountpoint_include": f"^{re.escape(str(tmp_path))}/",
                                     "mount_timeout": "300ms"}},
            "process": {"enabled": False}, "container": {"enabled": False}}})
        for _ in range(3):
            got = daemon.scrape()
            assert fs_value(got, "apm_host_filesystem_device_error", hung_point) == 1
            assert fs_value(got, "apm_host_filesystem_size_bytes", hung_point) is None
            # The rest of the host collector is all there: the other mount, CPU, memory.
            assert fs_value(got, "apm_host_filesystem_device_error", good_point) == 0
            assert fs_value(got, "apm_host_filesystem_size_bytes", good_point) == size
            assert "apm_host_cpu_seconds" in got and "apm_host_memory_available_bytes" in got
            success = {s.labels["collector"]: s.value for s in got["apm_exporter_collector_success"].samples}
            assert success["host"] == 1
        # Asked once: while that call hangs the mount is skipped, not asked (and a thread held) per scrape.
        assert hung.statfs_calls == 1
        assert good.statfs_calls >= 3

        hung.release()  # the server answers again: the held call returns, the mount is asked again
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = daemon.scrape()
            if fs_value(got, "apm_host_filesystem_device_error", hung_point) == 0:
                break
            time.sleep(0.05)
        assert fs_value(got, "apm_host_filesystem_device_error", hung_point) == 0
        assert fs_value(got, "apm_host_filesystem_size_bytes", hung_point) == size
        assert hung.statfs_calls == 2
        assert "filesystem statfs hangs, skipping it" in daemon.log()
        # unshare ignores SIGTERM; killing it hands the daemon its SIGTERM (--kill-child).
        daemon.stop(signal.SIGKILL)
    finally:
        hung.release()
