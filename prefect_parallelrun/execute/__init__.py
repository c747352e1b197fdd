"""Execute stage: entry-script processes on Dask workers.

Import from the modules, not from this package: the entry-script process imports this package
too, and must not pay for Dask or pandas before the user's script needs them.

- `compute`: compute targets (`"local"`, a scheduler URL, a `DaskCompute` block) -> a Client.
- `environment`: the check that every worker has the job's pip requirements.
- `job`: a job's processes on the workers: `start_job`, `run_attempt`, `drain_job`, `stop_job`.
- `process_spec`: `ProcessSpec`, what every entry-script process of a job is started with.
- `results`: `AttemptResult`, what one attempt of one mini-batch came to.
- `entry_script`: `EntryScript` and the mini-batch context, for the user's script.
- `process_slot`, `protocol`, `child`: one process, its messages, and its main loop.
"""
