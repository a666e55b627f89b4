"""The web console in a real browser: headless Debian Chromium driven by selenium over a served console
(uvicorn on loopback) on a workspace with one SUCCEEDED and one FAILED execution.

Screenshots go to $CONSOLE_ARTIFACTS_DIR, else to <pytest basetemp>/artifacts. Skipped, saying so, when
no Chromium and chromedriver are installed (.ci/run installs Debian's chromium and chromium-driver)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from browser import chromium, find_chromium, save_screenshot, serve
from console_workspace import FAILED, HOSTILE_CAUSE, HOSTILE_TEXT, SUCCEEDED, console_workspace

from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.records import ItemKind

pytestmark = pytest.mark.slow
HOSTILE_INPUT = "line-hostile-input"
WAIT = 60  # generous: CI runs these beside the rest of the suite on 2 cores


@pytest.fixture(scope="module")
def executables():
    found = find_chromium()
    if found is None:
        pytest.skip("browser tests skipped: no Chromium found (install Debian's chromium and "
                    "chromium-driver: apt-get install chromium chromium-driver)")
    return found


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    chosen = os.environ.get("CONSOLE_ARTIFACTS_DIR")
    path = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, executables):
    built = console_workspace(tmp_path_factory.mktemp("console-browser"))
    # One more finished execution whose input holds HTML and script.
    ws = built.workspace
    from asl_local.invokers import InProcessInvoker
    from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
    from embedding_ingest.pipeline.engine_store import WorkflowEngine

    WorkflowEngine(ws.ledger, InProcessInvoker(ws.handlers())).start_execution(
        "line", build_definition("line", local_resource_arn), HOSTILE_INPUT, {"note": HOSTILE_TEXT})
    return built


@pytest.fixture(scope="module")
def site(workspace):
    with serve(workspace.app()) as url:
        yield url


@pytest.fixture
def browser(executables):
    with chromium(executables) as driver:
        yield driver


def wait_for(driver, condition, what: str):
    """Wait for `condition`; on timeout say what the page showed (states, execution status, console)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        shown = driver.execute_script(
            "return [(document.querySelector('h1') || {}).textContent,"
            " Array.from(document.querySelectorAll('.error')).map((e) => e.textContent).join(' | '),"
            " Array.from(document.querySelectorAll('[data-state]')).map("
            "   (e) => e.getAttribute('data-state') + '=' + e.getAttribute('data-status')).join(' ')]")
        raise AssertionError(f"timed out waiting for {what}; page showed {shown}; "
                             f"console: {driver.get_log('browser')}") from None


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def state_status(driver, name: str) -> str | None:
    # One script call, not find-then-read: the page redraws the graph as events arrive, and an element
    # found a moment ago may be gone (stale) by the time it is read.
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && e.getAttribute('data-status')",
        f'[data-state="{name}"]')


def box_fill(driver, name: str) -> str | None:
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && getComputedStyle(e).fill",
        f'[data-state="{name}"] > rect.box')


def open_execution(driver, site: str, name: str) -> None:
    driver.get(f"{site}/#/execution/{name}")
    wait_for(driver, lambda d: css(d, "#graph-svg") and css(d, "#history-table"), f"the graph of {name}")


def test_the_failed_state_is_drawn_failed_and_selecting_it_shows_the_error(browser, site, artifacts):
    browser.get(f"{site}/#/executions")
    wait_for(browser, lambda d: css(d, "#executions-table"), "the executions table")
    rows = browser.execute_script("return Array.from(document.querySelectorAll("
                                  "'#executions-table tbody tr')).map((r) => r.getAttribute('data-name'))")
    assert {FAILED, SUCCEEDED} <= set(rows)
    # Clicked in the page's own script: the list redraws itself while any execution runs, and a link
    # found a moment before could be stale by the time selenium clicks it.
    browser.execute_script("document.querySelector(arguments[0]).click()",
                           f'#executions-table a[href="#/execution/{FAILED}"]')
    wait_for(browser, lambda d: state_status(d, "ListPendingWordBatchesFailed") == "failed", "the Fail state")

    assert state_status(browser, "ListPendingWordBatches") == "caught"
    assert state_status(browser, "PollWordBatches") == "not_entered"
    # Drawn in distinct colours, not just tagged: failed red, caught amber, not entered grey.
    fills = {box_fill(browser, n) for n in ("ListPendingWordBatchesFailed", "ListPendingWordBatches",
                                            "PollWordBatches")}
    assert len(fills) == 3
    assert css(browser, ".legend li")[1].text == "Failed"

    css(browser, '[data-state="ListPendingWordBatchesFailed"]')[0].click()
    wait_for(browser, lambda d: css(d, "#state-error"), "the state's error")
    assert css(browser, "#state-error")[0].text == "ReceiptStoreOffline"
    cause = css(browser, "#state-cause")[0].text
    assert "<script>window.__xss=3</script><b>bold?</b>" in cause  # shown as text, not run or rendered
    assert css(browser, "#state-detail script, #state-detail b, #execution-error b") == []
    assert browser.execute_script("return window.__xss === undefined")
    save_screenshot(browser, artifacts, "failed-execution-error-selected")


def test_the_history_filter_keeps_failed_events_only(browser, site, artifacts):
    open_execution(browser, site, FAILED)
    everything = css(browser, "#history-table tr.event")
    assert len(everything) > 4
    css(browser, "#history-failed-only")[0].click()
    wait_for(browser, lambda d: len(css(d, "#history-table tr.event")) == 2, "the failed-only history")
    types = [r.get_attribute("data-type") for r in css(browser, "#history-table tr.event")]
    assert types == ["TaskFailed", "ExecutionFailed"]
    css(browser, "#history-table tr.event")[0].click()  # expands its details
    wait_for(browser, lambda d: css(d, "#history-table tr.event-details pre"), "expanded details")
    assert HOSTILE_CAUSE.split("<")[0].strip() in css(browser, "#history-table tr.event-details pre")[0].text
    save_screenshot(browser, artifacts, "failed-execution-history-filtered")


def test_a_finished_execution_graph_shows_every_visited_state_succeeded(browser, site, artifacts):
    open_execution(browser, site, SUCCEEDED)
    for name in ("ListPendingBatches", "PollBatches", "PollBatch", "FinalMerge", "MarkBatchesComplete",
                 "IngestionSucceeded"):
        assert state_status(browser, name) == "succeeded", name
    assert state_status(browser, "NoPendingBatches") == "not_entered"
    poll = css(browser, '[data-state="PollBatches"] text.sub')[0].text
    assert poll == "3 iterations: 3 succeeded, 0 failed"
    assert "published" in css(browser, "#summary-message")[0].text
    save_screenshot(browser, artifacts, "succeeded-execution-page")  # sizes the window to the whole page
    css(browser, "#graph-svg")[0].screenshot(str(artifacts / "succeeded-execution-graph.png"))


def test_an_execution_input_holding_html_renders_as_text(browser, site):
    open_execution(browser, site, HOSTILE_INPUT)
    as_json = json.dumps(HOSTILE_TEXT)  # the input is shown as pretty-printed JSON
    assert as_json in browser.execute_script(
        "return document.getElementById('execution-input').textContent")
    css(browser, '[data-state="ListPendingBatches"]')[0].click()
    wait_for(browser, lambda d: css(d, "#state-input"), "the state's input")
    assert as_json in browser.execute_script("return document.getElementById('state-input').textContent")
    assert css(browser, "main img, main script") == []
    assert browser.execute_script("return window.__xss === undefined")


def test_the_query_box_returns_hits_with_ocr_text_as_text(browser, site, artifacts):
    browser.get(f"{site}/#/query")
    wait_for(browser, lambda d: css(d, "#query-text"), "the query form")
    css(browser, "#query-text")[0].send_keys(HOSTILE_TEXT)
    css(browser, "#query-submit")[0].click()
    wait_for(browser, lambda d: css(d, "#query-results tr.hit"), "query hits")
    hits = css(browser, "#query-results tr.hit")
    assert len(hits) == 10
    assert hits[0].find_elements("css selector", "td.doc")[0].text == HOSTILE_TEXT
    assert css(browser, "#query-results img, #query-results script") == []
    assert browser.execute_script("return window.__xss === undefined")
    save_screenshot(browser, artifacts, "query-hits")


def test_a_running_execution_changes_colour_without_a_reload(browser, site, workspace, artifacts):
    ws = workspace.workspace
    release, entered = threading.Event(), threading.Event()

    def held_list_pending(payload, ctx):
        entered.set()
        assert release.wait(120), "the test never released the task"
        return HANDLERS["embedding-list-pending"](payload, ctx)

    runner = threading.Thread(target=ws.run, args=(ItemKind.WORD,),
                              kwargs={"name": "word-live",
                                      "overrides": {"embedding-list-pending": held_list_pending}})
    runner.start()
    try:
        assert entered.wait(WAIT)
        open_execution(browser, site, "word-live")
        wait_for(browser, lambda d: state_status(d, "ListPendingWordBatches") == "in_progress",
                 "the blocked task drawn in progress")
        running_fill = box_fill(browser, "ListPendingWordBatches")
        browser.execute_script("window.__sameDocument = 'yes'")
        save_screenshot(browser, artifacts, "running-execution-in-progress")
        release.set()
        wait_for(browser, lambda d: state_status(d, "NoPendingWordBatches") == "succeeded",
                 "the graph updated after the task finished")
        assert state_status(browser, "ListPendingWordBatches") == "succeeded"
        assert box_fill(browser, "ListPendingWordBatches") != running_fill
        assert browser.execute_script("return window.__sameDocument") == "yes"  # no reload happened
        wait_for(browser, lambda d: css(d, "h1 .badge.status-succeeded"), "the execution badge")
        save_screenshot(browser, artifacts, "running-execution-finished")
    finally:
        release.set()
        runner.join(60)


def test_an_unknown_execution_says_so_instead_of_an_empty_graph(browser, site):
    browser.get(f"{site}/#/execution/no-such-run")
    wait_for(browser, lambda d: css(d, "#back-to-executions"), "the not-found message")
    assert css(browser, "main .error")[0].text == "no execution named 'no-such-run'"
    assert css(browser, "#graph, #history") == []  # no empty graph frame or history under it


def test_the_batches_page_shows_each_batch_tokens(browser, site, workspace):
    browser.get(f"{site}/#/batches")
    wait_for(browser, lambda d: css(d, "#batches-table"), "the batches table")
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('#batches-table tbody tr')).map((r) =>"
        " [r.getAttribute('data-batch'), r.cells[5].textContent, r.cells[6].textContent])")
    ledger = workspace.workspace.ledger
    expected = [[b.batch_id, str(b.tokens), str(b.billed_tokens)] for b in ledger.list_batches()]
    assert shown == expected and all(int(tokens) > 0 for _, tokens, _ in shown)


def test_an_action_without_the_token_says_so_at_the_top_of_the_page(browser, workspace):
    with serve(workspace.app(allow_actions=True, token="the-token")) as actions_site:
        browser.get(f"{actions_site}/#/executions")
        wait_for(browser, lambda d: css(d, "#executions-table") and css(d, "button.action"), "the actions")
        browser.execute_script("document.querySelector('button.action').click()")  # no token pasted
        wait_for(browser, lambda d: css(d, "#action-error"), "the refusal")
        assert "X-Console-Token" in css(browser, "#action-error")[0].text
        # Shown under the title, above the executions table (not below it, out of sight).
        assert browser.execute_script(
            "return document.getElementById('action-error').compareDocumentPosition("
            "document.getElementById('executions-table')) & Node.DOCUMENT_POSITION_FOLLOWING")
