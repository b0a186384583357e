"""Processors that end in each way the sandbox tells apart; run by target in its child."""

import os
from typing import Any

from handoff.processors import Job, ValidationFailed


def echo(job: Job) -> dict[str, Any]:
    """What the child saw of the job, and what it wrote to stdout on the way."""
    print("a processor's own print")
    return {"upload_id": job.upload_id, "purpose": job.purpose, "metadata": job.metadata,
            "files": [[f.name, f.path.read_text()] for f in job.files],
            "work_dir": [str(job.work_dir), job.work_dir.is_dir()], "settings": job.settings,
            "pid": os.getpid()}


def refuse(job: Job) -> dict[str, Any]:
    raise ValidationFailed(f"{job.files[0].name} is not what this purpose reads")


def break_down(job: Job) -> dict[str, Any]:
    raise ConnectionError("the share is away")


def return_a_list(job: Job) -> list[int]:
    return [1, 2]


def exit_at_once(job: Job) -> dict[str, Any]:
    os._exit(7)
