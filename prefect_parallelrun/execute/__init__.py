"""Execute stage: entry-script processes on Dask workers.

Import from the modules, not from this package: the entry-script process imports this package
too, and must not pay for Dask or pandas before the user's script needs them.

- `compute`: compute targets (`"local"`, a scheduler URL, a `DaskCompute` block) -> a Client;
  `compute_target` (their base), `compute_clusters` (the kinds), `compute_tls` (TLS),
  `local_cluster` (the "local" target's processes), `hardware` (GPUs and CPUs),
  `cluster_class` (a block's cluster class), `cluster_workers` (waiting for its workers).
- `parent_bound`: runs a module (Prefect's embedded API server) while its parent lives.
- `environment`: the check that every worker has the job's pip requirements.
- `environment_install`: with `DaskCompute(install_environment=True)`, the job's missing pip
  requirements installed on each worker, into a cached folder of its own; `environment_needs`
  (reading the environment), `package_install` (pip into the cache), `packages_plugin` (the
  folder on the workers' paths).
- `job`: a job's processes on the workers: `start_job`, `run_attempt`, `drain_job`, `stop_job`.
- `worker_plugin`: `JobProcessesPlugin`, a job's pool of process slots on one worker;
  `owner_watch` (stops a job whose flow has gone), `worker_logging` (the worker's log).
- `process_spec`: `ProcessSpec`, what every entry-script process of a job is started with.
- `results`: `AttemptResult`, what one attempt of one mini-batch came to, and every message
  the worker writes about an attempt; `attempt_record`: `AttemptRecord`, which times an
  attempt and builds its result.
- `entry_script`: `EntryScript` and the mini-batch context, for the user's script.
- `process_pool`, `process_slot`: a worker's slots, each with its `SlotStatus` lifecycle.
- `entry_process`: one running entry-script process seen from its worker (Popen, pipes, kill).
- `protocol`: the messages between a worker and its entry-script processes.
- `child`: the entry-script process's main loop; `loaded_script`: the user's script in it
  (init(), run(), checking results); `script_import`: importing the script and the mini-batch
  reader; `script_errors`: what it says when the script fails.
"""
