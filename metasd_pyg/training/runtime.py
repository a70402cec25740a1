"""The runtime section of a training run: where and how it runs (never what it computes)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from metasd_pyg.sections import Section, check, option


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` -> CUDA if available else CPU; anything else as given.

    Args:
        device: Device spec.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class RuntimeConfig(Section):
    """Device, threads and progress display of a run.

    Args:
        device: auto (CUDA if available, else CPU) or a torch device string.
        progress: Show a tqdm progress bar on stderr.
        threads: If set, torch.set_num_threads for the run.
        flush_denormal: On CPU, flush denormal floats to zero during training
            (restored to off afterwards). Confident 1-N softmaxes produce
            denormal probabilities whose products slow CPU matrix products
            several times (measured: 0.17 s -> 0.68 s per Kinship epoch within
            12 epochs).
        huge_pages: With the row-wise engine on CPU (Linux), keep entity
            tables of 32 MiB or more and their optimiser state in memory
            backed by transparent huge pages: the same values, faster random
            row access (a teacher step at ogbl-wikikg2 size: 3-5% faster).
    """

    ADDED_LATER: ClassVar[Mapping[str, Any]] = {"huge_pages": True}

    device: str = option("auto", resumable=True)
    progress: bool = option(True, resumable=True)
    threads: int | None = option(None, resumable=True)
    flush_denormal: bool = True
    huge_pages: bool = option(True, resumable=True)

    def validate(self) -> None:
        check(self.threads is None or self.threads >= 1,
              f"threads={self.threads}: must be >= 1 or None")
        check(bool(str(self.device).strip()), "device: must not be empty")

    @contextmanager
    def scope(self, device: torch.device) -> Iterator[None]:
        """Training on ``device`` with this section's float settings (denormals
        flushed on CPU, restored to off afterwards).

        Args:
            device: The training device.
        """
        flush = self.flush_denormal and device.type == "cpu"
        if flush:
            torch.set_flush_denormal(True)
        try:
            yield
        finally:
            if flush:
                torch.set_flush_denormal(False)
