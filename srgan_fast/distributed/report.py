"""What a run did: one result per file, the JSON-lines report of them, and the summary line."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from srgan_fast.io.atomic import write_bytes_atomically
from srgan_fast.distributed import storage

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
# Hidden, so that a later run over the output folder does not take it for an image.
REPORT_NAME = ".srgan-fast-report.jsonl"


@dataclass(frozen=True)
class FileResult:
    source: str
    destination: str
    status: str  # DONE, SKIPPED or FAILED
    cause: str = ""  # one line: why it was skipped or failed
    seconds: float = 0.0  # on the worker: read, upscale and write
    output_megapixels: float = 0.0  # all frames
    warnings: list[str] = field(default_factory=list)  # what the output format could not hold

    def json_line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class RunSummary:
    done: int
    skipped: int
    failed: int
    seconds: float  # the whole run, on the driver, Ray's start included
    output_megapixels: float
    report: str  # where the report was written
    problems: list[str] = field(default_factory=list)  # input folders without images
    results: list[FileResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the plan noticed: a file given twice, upscaled once

    @classmethod
    def of(cls, results: list[FileResult], seconds: float, report: str, problems: list[str],
           notes: list[str] = ()) -> RunSummary:
        def count(status: str) -> int:
            return sum(result.status == status for result in results)

        return cls(count(DONE), count(SKIPPED), count(FAILED), seconds,
                   sum(result.output_megapixels for result in results), report, problems, results, list(notes))

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def output_megapixels_per_second(self) -> float:
        return self.output_megapixels / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"srgan-fast: {self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s "
                f"({self.images_per_second:.2f} images/s, {self.output_megapixels_per_second:.2f} output MP/s); "
                f"report: {self.report}")


def default_report_location(output: str, output_is_file: bool) -> str:
    """Inside the output folder, or beside the output file."""
    if not output_is_file:
        return storage.join(output, REPORT_NAME)
    if storage.is_uri(output):
        return output.rsplit("/", 1)[0] + "/" + REPORT_NAME
    return os.path.join(os.path.dirname(output), REPORT_NAME)


def write_report(location: str, results: list[FileResult]) -> None:
    """All lines at once, atomically: a report is either the previous one or this run's, complete."""
    data = "".join(result.json_line() + "\n" for result in results).encode()
    with storage.local_target(location) as local:
        write_bytes_atomically(local, data)
