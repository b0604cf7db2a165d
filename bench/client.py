"""Run the load generator in a separate process and read its result."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from bench import config


def write_requests(items: list[dict], directory: Path | None = None) -> str:
    """Write request lines for the generator; returns the file's path."""
    f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, dir=directory)
    with f:
        for item in items:
            f.write(json.dumps(item, separators=(",", ":")) + "\n")
    return f.name


def load(url: str, requests_file: str, *, timeout: float = 900, **bounds) -> dict:
    """Run `python -m bench.loadgen` against `url` with these bounds; its result as a dict."""
    spec = {"url": url, "requests": requests_file, **bounds}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run([config.PYTHON, "-m", "bench.loadgen", str(spec_path), str(out_path)], cwd=config.ROOT,
                       check=True, timeout=timeout)
        return json.loads(out_path.read_text())
