"""Entry script whose import fails: it needs a module that is not installed."""

import a_module_that_is_not_installed  # noqa: F401


def run(mini_batch):
    return list(mini_batch)
