"""Sample a running process with py-spy and summarise where its time goes."""
from __future__ import annotations

import collections
import subprocess
import tempfile
from pathlib import Path

from bench import config


def record(pid: int, seconds: float, rate: int = 200) -> list[tuple[list[str], int]]:
    """Collapsed stacks of `pid` over `seconds` (py-spy's raw format), outermost frame first."""
    out = Path(tempfile.mkdtemp(prefix="entitle-prof-")) / "stacks.txt"
    spy = str(Path(config.PYTHON).parent / "py-spy")
    subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
                    "--format", "raw", "--output", str(out), "--nonblocking"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stacks = []
    for line in out.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames:
            stacks.append((frames.split(";"), int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]], top: int = 15, include: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """The frames (optionally only those whose text contains one of `include`) with the largest inclusive share."""
    total = sum(n for _, n in stacks) or 1
    inclusive: collections.Counter = collections.Counter()
    for frames, n in stacks:
        for frame in set(frames):
            if not include or any(word in frame for word in include):
                inclusive[frame] += n
    return [(frame, 100.0 * n / total) for frame, n in inclusive.most_common(top)]
