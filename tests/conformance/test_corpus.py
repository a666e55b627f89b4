"""Issue 14's conformance corpus: every case passes on the local engine; the summary runs every case on
moto's interpreter as well and prints how many agree on both (cases where moto is known to differ say
why, and cite the AWS page the expected value rests on)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from corpus import Case, agrees, load_cases, run_on_engine

CASES = load_cases()
# Moto runs each execution in a thread of its own and a few cases wait for real (Wait states, timeouts,
# retry intervals: ~12 of the ~17 s the corpus takes in a row), so the summary runs that many at once.
# Each case has its own state machine and execution, and corpus_handlers are pure functions of their
# event; the local engine's runs stay one at a time (run_on_engine points corpus_handlers.SLEEP at its
# virtual clock).
MOTO_RUNS_AT_ONCE = 8


def test_the_corpus_is_large_and_every_case_cites_its_source():
    assert len(CASES) >= 60
    for case in CASES:
        assert case.source.startswith(("https://docs.aws.amazon.com/", "https://states-language.net/")), \
            case.id


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_on_the_local_engine(case: Case):
    actual = run_on_engine(case)

    assert agrees(case.expected, actual), f"{case.id}: expected {case.expected}, got {actual}"


@pytest.mark.slow
def test_corpus_summary_on_both_engines(capsys, moto_corpus_server):
    with ThreadPoolExecutor(MOTO_RUNS_AT_ONCE) as pool:
        on_moto = list(pool.map(moto_corpus_server.run, CASES))
    rows = [(case, run_on_engine(case), moto) for case, moto in zip(CASES, on_moto, strict=True)]

    both = [case.id for case, ours, moto in rows
            if agrees(case.expected, ours) and agrees(case.expected, moto)]
    ours_wrong = [case.id for case, ours, _ in rows if not agrees(case.expected, ours)]
    moto_unexplained = [(case.id, moto) for case, _, moto in rows
                        if not agrees(case.expected, moto) and not case.moto_differs]
    moto_fixed = [case.id for case, _, moto in rows if agrees(case.expected, moto) and case.moto_differs]
    with capsys.disabled():
        print(f"\nconformance corpus: {len(both)} of {len(rows)} cases agree on both the local engine and "
              f"moto; {len(rows) - len(ours_wrong)} pass on the local engine; moto differs (documented) on: "
              f"{', '.join(c.id for c, _, _ in rows if c.moto_differs)}")
    assert ours_wrong == []
    assert moto_unexplained == [], "moto differs from AWS here and the case does not say why"
    assert moto_fixed == [], "moto now agrees: drop the case's moto_differs note"
