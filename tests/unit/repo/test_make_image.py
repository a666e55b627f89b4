"""`make image` builds what Lambda accepts: linux/amd64, and (with docker) no provenance attestation."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RECORDING_BUILDER = """#!/bin/sh
# answers `info` like a running daemon; records every other call
[ "$1" = info ] && exit 0
echo "$0 $*" >> "$BUILDER_CALLS"
"""


@pytest.mark.parametrize("builder", ["docker", "podman"])
def test_make_image_builds_for_linux_amd64_as_a_single_image(tmp_path, builder):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / builder
    tool.write_text(RECORDING_BUILDER)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls"
    # only the stand-in builder (and the shell's basics) on PATH: no real docker or podman is reached
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "BUILDER_CALLS": str(calls)}

    made = subprocess.run(["make", "-s", "image", "IMAGE=test:1"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)

    assert made.returncode == 0, made.stderr
    (build,) = calls.read_text().splitlines()
    args = build.split()[1:]
    assert args[:3] == ["build", "--platform", "linux/amd64"]
    assert ("--provenance=false" in args) is (builder == "docker")  # podman makes no attestations
    assert args[-3:] == ["-t", "test:1", "."]
