"""An entry script whose every item (a small file) says what run() should do with it.

Item texts: "ok", "sleep <seconds>", "exit <code>", "raise", "return-none", "double", "skip",
"facts", "log", "spawn-sleeper". Events (init, shutdown) are noted in $NOTES_FILE; $FAIL_INIT,
$INIT_SLEEP and $FAIL_SHUTDOWN make init() and shutdown() misbehave.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from azureml_user.parallel_run import EntryScript

_options = None


def init():
    global _options
    parser = argparse.ArgumentParser()
    parser.add_argument("--greeting", default="hello")
    _options, _ = parser.parse_known_args()
    _note("init")
    time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init failed on purpose")
    EntryScript().logger.info("init done")


def run(mini_batch):
    results = []
    for path in mini_batch:
        with open(path) as item:
            command, _, value = item.read().strip().partition(" ")
        if command == "return-none":
            return None
        results.extend(_act(command, value, os.path.basename(path)))
    return results


def shutdown():
    _note("shutdown")
    if os.environ.get("FAIL_SHUTDOWN"):
        raise RuntimeError("shutdown failed on purpose")


def _act(command, value, name):
    if command == "sleep":
        time.sleep(float(value))
    elif command == "exit":
        os._exit(int(value))
    elif command == "raise":
        raise ValueError(f"cannot score {name}")
    elif command == "double":
        return [f"{name} first", f"{name} second"]
    elif command == "skip":
        return []
    elif command == "facts":
        return [json.dumps(_facts())]
    elif command == "log":
        EntryScript().logger.warning("scoring %s", name)
        EntryScript().logger.debug("a debug line that the INFO level hides")
        print(f"stdout of {name}")
        print(f"stderr of {name}", file=sys.stderr)
    elif command == "spawn-sleeper":
        sleeper = subprocess.Popen(["sleep", "600"])
        _note(f"sleeper {sleeper.pid}")
        time.sleep(600)
    return [f"{name} {_options.greeting}"]


def _facts():
    entry_script = EntryScript()
    return {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "argv": sys.argv,
        "secret": os.environ.get("SECRET_TOKEN"),
        "output_path": os.environ.get("AZUREML_BI_OUTPUT_PATH"),
        "output_dir": entry_script.output_dir,
        "agent_name": entry_script.agent_name,
        "log_dir": entry_script.log_dir,
        "greeting": _options.greeting,
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def _note(event):
    notes = os.environ.get("NOTES_FILE")
    if notes:
        with open(notes, "a") as notes_file:
            notes_file.write(f"{event} {os.getpid()}\n")
