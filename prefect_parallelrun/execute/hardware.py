"""What a node offers the entry-script processes: its GPUs and CPUs."""

from __future__ import annotations

import functools
import os
import subprocess

_NVIDIA_SMI_TIMEOUT_SECONDS = 10


@functools.cache
def visible_gpus() -> tuple[str, ...]:
    """The GPU indices this process may use: from CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`.

    Read once per process, then cached.

    Returns:
        The GPU indices (or UUIDs, as CUDA_VISIBLE_DEVICES gives them); empty when there is
        no GPU, or `nvidia-smi` is missing or fails.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = tuple(device.strip() for device in visible.split(",") if device.strip())
        return () if not devices or devices[0] in ("-1", "NoDevFiles") else devices
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_SECONDS,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    count = sum(1 for line in listing.splitlines() if line.startswith("GPU "))
    return tuple(str(index) for index in range(count))


def cpu_count() -> int:
    """The CPUs this process may run on.

    Returns:
        Its CPU affinity's size where the platform has one, else the machine's CPU count.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_process_count(nodes_on_this_machine: int = 1) -> int:
    """The default `process_count_per_node` for a node on this machine.

    Args:
        nodes_on_this_machine: The workers that share this machine (those of a "local"
            cluster all run here).

    Returns:
        One process per visible GPU, else one per CPU, shared among the workers; at least 1.
    """
    return max(1, (len(visible_gpus()) or cpu_count()) // nodes_on_this_machine)
