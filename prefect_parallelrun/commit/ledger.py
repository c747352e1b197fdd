"""The resume ledger: what a job finds committed in its output folder, and whether it may resume.

Each committed mini-batch has a record, `.parallel_run/ledger/<id>.json`, stamped with the code
that made its rows (`code_sha256`); `.parallel_run/job.json` holds the fingerprint of the job
that owns the folder. A resumed job must be the same job (the same fingerprint but for `code`);
a changed `code` resumes, with a warning that some committed rows come from an earlier version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from prefect_parallelrun.commit.errors import ResumeRefusedError
from prefect_parallelrun.commit.folder_files import FolderFiles

# The fingerprint entry for what produced the rows (script, source files, arguments): unlike
# every other entry, it may change on resume, since fixing the script is why one resumes.
CODE = "code"


@dataclass(frozen=True)
class CommitRecord:
    """What the ledger keeps of one committed mini-batch.

    Args:
        mini_batch_id: The mini-batch's stable id.
        mini_batch_index: Its position in the job's plan (the order of the append_row file).
        attempt: The attempt whose rows were committed (1 for the first).
        items: The items of the mini-batch.
        succeeded_items: Items `run()` returned a result for.
        failed_items: Items it did not.
    """

    mini_batch_id: str
    mini_batch_index: int
    attempt: int
    items: int
    succeeded_items: int
    failed_items: int


@dataclass(frozen=True)
class LedgerEntry:
    """A commit record as read back, with where its rows are.

    Args:
        record: The commit record.
        code_sha256: The stamp of the code that made its rows; None in records written before
            stamps existed (they count as made by the previous run's code).
        part: Path of its rows on the folder's filesystem; None when it has none.
    """

    record: CommitRecord
    code_sha256: str | None
    part: str | None


def read_ledger(files: FolderFiles) -> dict[str, LedgerEntry]:
    """Every commit record in the folder's ledger, in both layouts (parts moved under `parts/`,
    or records that name their rows).

    Args:
        files: The output folder's state files.

    Returns:
        The entries by mini-batch id.

    Raises:
        OSError: The ledger cannot be read.
    """
    paths = files.files_in(files.ledger_folder, ".json")
    entries = {}
    for text in files.read_each(paths):
        fields = json.loads(text)
        stamp = fields.pop("code_sha256", None)
        names_its_rows = "rows" in fields
        rows = fields.pop("rows", None)
        record = CommitRecord(**fields)
        part: str | None
        if names_its_rows:
            part = None if rows is None else f"{files.state}/{rows}"
        else:
            moved = files.moved_part(record.mini_batch_id)
            part = moved if files.exists(moved) else None
        entries[record.mini_batch_id] = LedgerEntry(record, stamp, part)
    return entries


def code_sha256(fingerprint: dict[str, Any] | None) -> str:
    """The stamp of the code in a job's fingerprint, kept in each commit record.

    Args:
        fingerprint: A job's fingerprint; None or one without `code` stamps as no code.

    Returns:
        The SHA-256 of the `code` entry, as hex.
    """
    code = fingerprint.get(CODE) if fingerprint else None
    return hashlib.sha256(json.dumps(code, sort_keys=True).encode()).hexdigest()


def refuse_a_different_job(
    folder_url: str, previous: dict[str, Any], fingerprint: dict[str, Any]
) -> None:
    """Refuse to resume a folder whose job differs in any entry but `code`.

    Args:
        folder_url: The output folder, for the message.
        previous: The fingerprint of the job that owns the folder.
        fingerprint: The fingerprint of the job that would resume it.

    Raises:
        ResumeRefusedError: An entry other than `code` changed; the message names them.
    """
    changed = _changed(
        {key: value for key, value in previous.items() if key != CODE},
        {key: value for key, value in fingerprint.items() if key != CODE},
    )
    if changed:
        raise ResumeRefusedError(
            f"The output folder {folder_url} holds an earlier run of a different job "
            f"(changed: {', '.join(changed)}), so it cannot be resumed. Run again with "
            f"resume=False (command line: --no-resume) to start over and replace its "
            f"results, or choose another output folder."
        )


def earlier_code_warning(
    previous: dict[str, Any] | None,
    fingerprint: dict[str, Any],
    ledger: dict[str, LedgerEntry],
    kept: str,
) -> str | None:
    """The warning for committed mini-batches whose stamp is not the current code's.

    A record without a stamp was committed under the previous run's code.

    Args:
        previous: The fingerprint of the job that owned the folder; None for a new folder.
        fingerprint: The resuming job's fingerprint.
        ledger: The folder's ledger.
        kept: What a committed mini-batch keeps: "rows" or "counts".

    Returns:
        The warning to show once; None when every committed mini-batch has the current code.
    """
    current = code_sha256(fingerprint)
    earlier = code_sha256(previous) if previous else current
    count = sum(1 for entry in ledger.values() if (entry.code_sha256 or earlier) != current)
    if count == 0:
        return None
    changed = []
    if previous is not None:
        changed = _changed(previous.get(CODE) or {}, fingerprint.get(CODE) or {})
    since = f" (changed since the last run: {', '.join(changed)})" if changed else ""
    mini_batches = "mini-batch keeps its" if count == 1 else "mini-batches keep their"
    return (
        f"Resuming with a different entry script, source_directory, arguments or "
        f"environment{since}: {count} committed {mini_batches} {kept} from an earlier "
        f"version and will not run again. Run with resume=False (command line: "
        f"--no-resume) to recompute them."
    )


def _changed(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return sorted(
        key for key in set(previous) | set(current) if previous.get(key) != current.get(key)
    )
