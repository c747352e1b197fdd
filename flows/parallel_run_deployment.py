"""A ready-made deployment of the `parallel_run` flow.

Serve it, then start runs from the Prefect UI's run form (pick a saved ParallelRunConfig block,
give the inputs and the output folder) or from the CLI:

    python flows/parallel_run_deployment.py
    prefect deployment run 'parallel-run/parallel-run' \
        --param config='{"$ref": {"block_document_id": "<id of a saved ParallelRunConfig>"}}' \
        --param inputs='[{"kind": "files", "paths": ["images/"]}]' \
        --param output=scores/

Cancelling such a run in the UI stops its entry-script processes and keeps what was committed
(tests/test_dispatch_cancel.py runs and cancels this deployment).
"""

from prefect_parallelrun import parallel_run

if __name__ == "__main__":
    parallel_run.serve(name="parallel-run")
