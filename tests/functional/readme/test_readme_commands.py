"""The README's commands work verbatim: the fenced ```bash blocks of its "Using it" and "Monitoring"
sections run, in order, in one shell at 80 columns, from an empty workspace (in a scratch copy of the
repository's layout), and each visibly does what the README says; their tables fit 80 columns with no
header split, and listed ids show whole or as a unique prefix, never broken over lines. A fence
preceded by `<!-- readme-test: needs-aws -->` or `<!-- readme-test: skip ... -->` is skipped.
Documented defaults match the code."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from cli_runner import _FOREIGN_SETTINGS, Cli, warm_command
from readme_fences import bash_fences, console_samples, section_bodies
from table_width import WIDTH, assert_ids_whole, assert_tables_fit

from embedding_ingest.config import Settings
from embedding_ingest.providers.minilm import MODEL_NAME as MINILM

REPO_ROOT = Path(__file__).resolve().parents[3]
README = REPO_ROOT / "README.md"
SECTIONS = ("Using it", "Monitoring")


def test_the_fence_extractor_keeps_bash_fences_of_the_two_sections_and_honours_skip_marks():
    text = "\n".join([
        "## Using it", "```bash", "echo one", "```", "```console", "$ not run", "```",
        "<!-- readme-test: needs-aws -->", "```bash", "aws only", "```",
        "### Monitoring (tasks)", "<!-- readme-test: skip (long-running) -->", "", "```bash", "forever",
        "```", "```bash", "echo two", "```", "```console", "```", "```console", "$ a", "x", "$ b", "```",
        "## Configuration", "```bash", "not in a section", "```"])

    assert bash_fences(text, SECTIONS) == (["echo one", "echo two"], 2)
    assert console_samples(text, SECTIONS) == [("not run", "")]


def _scratch_repository(root: Path) -> Path:
    """A directory shaped like a clone for the README's relative paths: .venv/bin (where the test puts
    embedding-ingest: cli_runner.warm_command), src/ the repository's sources (read-only use). The
    installed console script itself runs in test_readme_consumer_example's shell example."""
    work = root / "clone"
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / "src").symlink_to(REPO_ROOT / "src")
    return work


# What each README command must visibly do (a command -> text its output holds), in README order.
SAYS = [
    ("receipts import", "receipts imported  12"),
    ("submit line --dry-run", "Would submit 651 lines"),
    ("submit line", "Submitted 651 lines"),
    ("start-execution line --name my-first-run", "Execution my-first-run"),
    ("start-execution line --until-idle", "no line batch is active"),
    ("submit word", "Submitted 1,381 words in 3 batches"),
    ("start-execution word --until-idle", "published 1,381 embeddings"),
    ("query line", "TOTAL AMOUNT"),
    ("status", "SUCCESS"),
    ("describe-execution my-first-run --output json", '"name": "my-first-run"'),
    ("get-execution-history my-first-run --max-results 50", "ExecutionSucceeded"),
    ("get-execution-history my-first-run --max-results 5 --output json", '"nextToken"'),
    ("get-execution-history my-first-run --failed-only", "no failed events in my-first-run"),
    ("batches list --type line --wide", "provider batch"),
    ("list-executions", "my-first-run"),
    ("batches list --status completed", "COMPLETED"),
    ("snapshots list line", "lines snapshot versions (* current)"),
    ("definitions render line", "otherwise -> NoPendingBatches"),
    ("locks list", "(free)"),
]
# Listing commands whose ids must show whole or as a unique prefix: (command, ids from its JSON).
IDS = {"batches list --status completed": lambda j: [b["batch_id"] for b in j["batches"]],
       "list-executions": lambda j: [e["name"] for e in j["executions"]],
       "snapshots list line": lambda j: [v["version"] for v in j["versions"]],
       "query line": lambda j: [r["metadata"]["image_id"] for r in j["results"]]}
MARK = "@@readme-command@@"


def _commands(fences: list[str]) -> list[str]:
    return [line for fence in fences for line in fence.splitlines() if line.strip()
            and not line.lstrip().startswith("#")]


def _script(commands: list[str]) -> str:
    """One shell for all (exports carry on); before each command a marker line on stdout and stderr."""
    lines = ["set -euo pipefail"]
    for index, command in enumerate(commands):
        lines += [f"echo '{MARK} {index}'", f"echo '{MARK} {index}' >&2", command]
    return "\n".join(lines) + "\n"


def _split(text: str, count: int) -> list[str]:
    parts = [""] * count
    current = None
    for line in text.splitlines(keepends=True):
        if line.startswith(MARK):
            current = int(line.split()[1])
        elif current is not None:
            parts[current] += line
    return parts


@pytest.mark.slow
def test_readme_commands_run_verbatim_from_an_empty_workspace_and_each_visibly_does_something(tmp_path):
    fences, _ = bash_fences(README.read_text(encoding="utf-8"), SECTIONS)
    commands = _commands(fences)
    assert len(commands) >= 15, "the README's Using it / Monitoring sections lost their bash commands"
    work = _scratch_repository(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env.update(COLUMNS=str(WIDTH), LOCAL_PROVIDER_POLLS_PER_STAGE="0")  # batches finish at their first poll

    with warm_command(work / ".venv" / "bin"):  # each command forked warm, as cli_runner's commands are
        done = subprocess.run(["bash", "-c", _script(commands)], cwd=work, env=env, capture_output=True,
                              text=True, timeout=1500)

    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    stdout, stderr = _split(done.stdout, len(commands)), _split(done.stderr, len(commands))
    home = work / ".embedding-ingest" / "mine"
    cli = Cli(home=home, settings={})
    remaining = list(SAYS)
    for command, out, err in zip(commands, stdout, stderr, strict=True):
        if "--wide" not in command:  # --wide keeps every column, whatever the width
            assert_tables_fit(out)
        if remaining and remaining[0][0] in command:
            expected = remaining.pop(0)[1]
            assert expected in out + err, (command, out[-2000:], err[-2000:])
        if command.startswith("$E ") and "--output json" not in command and "--wide" not in command:
            assert "next:" in err or out.strip(), command  # says something, at least a hint
        listed = next((ids for start, ids in IDS.items() if command.startswith(f"$E {start}")), None)
        if listed:
            assert_ids_whole(out, listed(cli.json(*shlex.split(command, comments=True)[1:])))
    assert remaining == [], f"README commands missing or out of order: {remaining}"
    _assert_samples_print_as_shown(cli)
    assert (home / "ledger.sqlite3").exists() and not (work / ".embedding-ingest" / "ledger.sqlite3").exists()
    written = {p.name + ("/" if p.is_dir() else "") for p in work.iterdir()} - {".venv/", "src/"}
    ignored = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "--no-index", "--stdin"],
                             input="\n".join(sorted(written)), capture_output=True, text=True)
    assert set(ignored.stdout.split()) == written, "the README writes files .gitignore does not cover"


def _assert_samples_print_as_shown(cli: Cli) -> None:
    """Each `$ embedding-ingest query ...` sample of "Using it" prints what the README shows, at 80
    columns, stdout and stderr together (no `next:` line the command does not print); the version is
    the one part a new workspace changes."""
    samples = [(command, printed) for command, printed in console_samples(README.read_text(encoding="utf-8"),
                                                                          ("Using it",))
               if command.startswith("embedding-ingest query ")]
    assert samples, "the README's query sample is gone"
    for command, printed in samples:
        done = cli.run(*shlex.split(command)[1:], COLUMNS=str(WIDTH))
        assert _unversioned(done.stdout + done.stderr) == _unversioned(printed), command


def _unversioned(text: str) -> str:
    return re.sub(r"\(version [0-9a-f]{8,64}, ", "(version V, ", text)


def test_the_model_using_it_suggests_for_meaning_is_one_the_local_provider_runs():
    """"Using it" tells a reader whose query results look wrong which model matches meaning: a name
    the local provider does not know would send them to a one-line error instead."""
    (section,) = section_bodies(README.read_text(encoding="utf-8"), ("Using it",))
    suggested = set(re.findall(r"EMBEDDING_MODEL=([\w.-]+)", "\n".join(section)))

    assert suggested == {MINILM}


def _documented_defaults(text: str) -> dict[str, str]:
    """Variable -> default cell of the README's configuration table ("A, B" rows split "x / y")."""
    defaults: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        values = [v.strip() for v in cells[2].split(" / ")] if len(names) > 1 else [cells[2]]
        if len(values) == len(names):
            defaults.update(zip(names, values, strict=True))
    return defaults


def test_documented_defaults_match_the_code(tmp_path, monkeypatch):
    for variable in _FOREIGN_SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    documented = _documented_defaults(README.read_text(encoding="utf-8"))
    settings = Settings()
    by_alias = {field.alias: name for name, field in Settings.model_fields.items() if field.alias}

    checked = 0
    for variable, cell in documented.items():
        if variable in by_alias and re.fullmatch(r"[\d.]+", cell):
            assert float(cell) == float(getattr(settings, by_alias[variable])), variable
            checked += 1
    assert checked >= 8
    assert documented["CHROMA_ROOT"] == "`$EMBEDDING_INGEST_HOME/chroma-cache`"
    assert settings.cache_dir == settings.home / "chroma-cache"
    assert documented["EMBEDDING_INGEST_HOME"] == "`./.embedding-ingest`" and settings.home == Path(
        ".embedding-ingest")
