"""An entry script that takes GPU memory in init() and reports what CUDA shows it.

Item texts: "facts" (logs a JSON line of facts), "sleep <seconds>".
"""

import json
import os
import time

import torch
from azureml_user.parallel_run import EntryScript

_weights = None


def init():
    global _weights
    _weights = torch.ones(64, 1024, 1024, device="cuda")  # 256 MiB, as a model would hold


def run(mini_batch):
    for path in mini_batch:
        with open(path) as item:
            command, _, value = item.read().strip().partition(" ")
        if command == "sleep":
            time.sleep(float(value))
        elif command == "facts":
            facts = {
                "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "device_count": torch.cuda.device_count(),
                "device_name": torch.cuda.get_device_name(0),
                "allocated": torch.cuda.memory_allocated(),
                "sum": float(_weights.sum().item()),
            }
            EntryScript().logger.info(json.dumps(facts))
    return list(mini_batch)
