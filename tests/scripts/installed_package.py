"""An entry script that needs `pyjokes`, a package the test environment does not have: each
item becomes a row "<file name> <pyjokes version> <folder pyjokes was imported from>"."""

import importlib.metadata
import os

import pyjokes


def run(mini_batch):
    folder = os.path.dirname(os.path.dirname(pyjokes.__file__))
    version = importlib.metadata.version("pyjokes")
    return [f"{os.path.basename(path)} {version} {folder}" for path in mini_batch]
