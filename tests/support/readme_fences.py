"""The README's runnable commands: the ```bash fences of chosen sections (tests run them verbatim). A
fence preceded by `<!-- readme-test: needs-aws -->` or `<!-- readme-test: skip ... -->` is skipped.
The ```console fences (a `$ command` and what it prints) are samples tests compare with the output."""

from __future__ import annotations

import re
from collections.abc import Iterator

SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*(needs-aws\s*|skip\b[^>]*)-->")
FENCE = re.compile(r"^```(\w*)\s*$")


def section_bodies(text: str, sections: tuple[str, ...]) -> list[list[str]]:
    """Lines of each README section whose heading starts with one of `sections` (down to the next
    heading of the same or a higher level)."""
    lines, found = text.splitlines(), []
    for index, line in enumerate(lines):
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading and heading.group(2).startswith(sections):
            level, body, in_fence = len(heading.group(1)), [], False
            for following in lines[index + 1:]:
                in_fence ^= following.startswith("```")
                inner = re.match(r"^(#+)\s", following)
                if inner and not in_fence and len(inner.group(1)) <= level:  # a shell comment is no heading
                    break
                body.append(following)
            found.append(body)
    return found


def _fences(text: str, sections: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """(language, block, the last non-blank line before the fence) of every fence of `sections`, in
    README order (a subsection's fences come again with its parent section's)."""
    for body in section_bodies(text, sections):
        index = 0
        while index < len(body):
            opening = FENCE.match(body[index])
            if not opening:
                index += 1
                continue
            end = next(i for i in range(index + 1, len(body)) if body[i].startswith("```"))
            before = next((body[i] for i in range(index - 1, -1, -1) if body[i].strip()), "")
            yield opening.group(1), "\n".join(body[index + 1:end]), before
            index = end + 1


def bash_fences(text: str, sections: tuple[str, ...]) -> tuple[list[str], int]:
    """(the bash fences to run, in README order without repeats, how many were skipped by a mark)."""
    fences: list[str] = []
    skipped: set[str] = set()  # a subsection's fences are also in its parent section: count them once
    for language, block, before in _fences(text, sections):
        if language == "bash":
            if SKIP_MARK.search(before):
                skipped.add(block)
            elif block not in fences:
                fences.append(block)
    return fences, len(skipped)


def console_samples(text: str, sections: tuple[str, ...]) -> list[tuple[str, str]]:
    """(command without its `$ `, the lines it prints, each ending in a newline) of every ```console
    fence of `sections` that holds one command, in README order without repeats."""
    samples: list[tuple[str, str]] = []
    for language, block, _ in _fences(text, sections):
        command, *printed = block.splitlines() or [""]
        sample = (command.removeprefix("$ "), "".join(f"{line}\n" for line in printed))
        if language == "console" and command.startswith("$ ") and not any(
                line.startswith("$ ") for line in printed) and sample not in samples:
            samples.append(sample)
    return samples
