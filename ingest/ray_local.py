"""A throwaway Ray cluster of N nodes on this machine, for the tests and the benchmark.

Each node is a real `ray start` (the head with ``--head --port``, the others joining with
``--address``) with its own temporary folder and its own CPU count, on 127.0.0.1. Stopping
kills exactly the processes this object started, by their process groups, never every Ray
process of the machine as `ray stop` would (another cluster may be running beside it).
Embedding actors start their own process groups; they exit when their node's raylet is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from rag.errors import ClusterError

#: Ports Ray would otherwise fix per machine (two nodes on one host must not share them).
_PER_NODE_PORTS = (
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalCluster:
    """``with LocalCluster(nodes=2, cpus_per_node=1) as cluster: ... cluster.address ...``"""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, object_store_mb: int = 200) -> None:
        if nodes < 1 or cpus_per_node < 1:
            raise ClusterError(
                f"a cluster needs nodes >= 1 and CPUs >= 1, got {nodes}/{cpus_per_node}"
            )
        self.nodes = nodes
        self.cpus = cpus_per_node
        self.object_store = object_store_mb * 1_000_000
        self.address = f"127.0.0.1:{_free_port()}"
        self.root = Path(tempfile.mkdtemp(prefix="rag-ray-"))
        self.groups: list[int] = []

    def start(self) -> str:
        ray = str(Path(sys.executable).with_name("ray"))
        port = self.address.rpartition(":")[2]
        for n in range(self.nodes):
            head = ["--head", "--port", port, "--include-dashboard", "false"]
            role = head if n == 0 else ["--address", self.address]
            temp = self.root / f"node{n}"
            temp.mkdir()
            command = [
                ray, "start", *role,
                "--node-ip-address", "127.0.0.1",
                "--num-cpus", str(self.cpus),
                "--num-gpus", "0",
                "--object-store-memory", str(self.object_store),
                "--temp-dir", str(temp),
                "--disable-usage-stats",
                *(arg for flag in _PER_NODE_PORTS for arg in (flag, "0")),
            ]  # fmt: skip
            env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
            # A session of its own: every daemon of this node shares its process group.
            starter = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            self.groups.append(starter.pid)
            output, _ = starter.communicate(timeout=180)
            if starter.returncode != 0:
                self.stop()
                tail = output.decode("utf-8", "replace")[-2000:]
                raise ClusterError(f"`ray start` failed for node {n}: {tail}")
        self._wait_for_nodes()
        return self.address

    def _wait_for_nodes(self, timeout_s: float = 120) -> None:
        """Until every node has registered (a joining node takes a few seconds)."""
        import ray

        deadline = time.monotonic() + timeout_s
        ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
        try:
            while sum(1 for n in ray.nodes() if n["Alive"]) < self.nodes:
                if time.monotonic() > deadline:
                    raise ClusterError(f"only some of {self.nodes} Ray nodes came up")
                time.sleep(0.5)
        finally:
            ray.shutdown()

    def kill_node(self, n: int) -> None:
        """Kill node ``n``'s daemons at once (``kill -9``), as a crashed machine would go."""
        _signal_group(self.groups[n], signal.SIGKILL)

    def stop(self) -> None:
        """Stop every node: SIGTERM, a short grace, then SIGKILL; returns once they are gone."""
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            for group in self.groups:
                _signal_group(group, sig)
            deadline = time.monotonic() + grace
            while any(_alive(g) for g in self.groups) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.groups = []
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
            return self
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
