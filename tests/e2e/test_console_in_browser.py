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
from console_browser import (
    SCREEN,
    WAIT,
    box_fill,
    chart,
    check_docs_screenshot,
    click_state,
    csp_violations,
    css,
    graph_geometry,
    inside,
    open_execution,
    state_status,
    wait_for,
)
from console_workspace import FAILED, HOSTILE_CAUSE, HOSTILE_TEXT, SUCCEEDED, console_workspace
from pipeline import receipts_file

from embedding_ingest.snapshots.version_ids import short_version_of
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.records import ItemKind

pytestmark = pytest.mark.slow
HOSTILE_INPUT = "line-hostile-input"
BATCH_PAGE = 20  # views.js BATCH_PAGE


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
    # More batches than a page of the batches view holds: two more receipts' lines, a few per batch,
    # submitted and left waiting (no line execution runs after this).
    ws.import_receipts(receipts_file(tmp_path_factory.mktemp("more-receipts"), 2, start=10))
    ws.submit(ItemKind.LINE, max_items_per_batch=4)
    assert len(ws.ledger.list_batches()) > BATCH_PAGE
    return built


@pytest.fixture(scope="module")
def site(workspace):
    with serve(workspace.app()) as url:
        yield url


@pytest.fixture
def browser(executables):
    with chromium(executables) as driver:
        yield driver


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


def test_a_finished_execution_graph_shows_every_visited_state_succeeded(browser, site, workspace, artifacts):
    open_execution(browser, site, SUCCEEDED)
    for name in ("ListPendingBatches", "PollBatches", "PollBatch", "FinalMerge", "MarkBatchesComplete",
                 "IngestionSucceeded"):
        assert state_status(browser, name) == "succeeded", name
    assert state_status(browser, "NoPendingBatches") == "not_entered"
    poll = css(browser, '[data-state="PollBatches"] text.sub')[0].text
    assert poll == "3 iterations: 3 succeeded, 0 failed"
    assert "published" in css(browser, "#summary-message")[0].text
    shown = css(browser, "#published-version")[0]  # short as everywhere, the whole id on hover
    whole = shown.get_attribute("title")
    assert [v.version for v in workspace.workspace.ledger.list_versions("lines")].count(whole) == 1
    assert shown.text == short_version_of(workspace.workspace.ledger, "lines", whole) != whole
    assert whole not in css(browser, "#summary-message")[0].text
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


def test_the_query_box_returns_hits_with_ocr_text_as_text(browser, site, workspace, artifacts):
    browser.get(f"{site}/#/query")
    wait_for(browser, lambda d: css(d, "#query-text"), "the query form")
    css(browser, "#query-text")[0].send_keys(HOSTILE_TEXT)
    css(browser, "#query-submit")[0].click()
    wait_for(browser, lambda d: css(d, "#query-results tr.hit"), "query hits")
    hits = css(browser, "#query-results tr.hit")
    assert len(hits) == 10
    assert hits[0].find_elements("css selector", "td.doc")[0].text == HOSTILE_TEXT
    ledger = workspace.workspace.ledger
    whole = ledger.get_published("lines").version
    caption = css(browser, "#query-caption")[0]
    assert f"(version {short_version_of(ledger, 'lines', whole)}, " in caption.text
    assert caption.get_attribute("title") == f"version {whole}"
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


def test_the_batches_page_shows_each_batch_tokens_a_page_at_a_time(browser, site, workspace):
    browser.get(f"{site}/#/batches")
    wait_for(browser, lambda d: css(d, "#batches-table"), "the batches table")
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('#batches-table tbody tr')).map((r) =>"
        " [r.getAttribute('data-batch'), r.cells[5].textContent, r.cells[6].textContent])")
    ledger = workspace.workspace.ledger
    expected = [[b.batch_id, str(b.tokens), "" if b.billed_tokens is None else str(b.billed_tokens)]
                for b in ledger.list_batches()]
    assert shown == expected[:BATCH_PAGE] and all(int(tokens) > 0 for _, tokens, _ in shown)

    # Paged, BATCH_PAGE at a time: Later through to the last page holds every batch once, in order.
    ids = ("return Array.from(document.querySelectorAll('#batches-table tbody tr'))"
           ".map((r) => r.dataset.batch)")
    pages = [browser.execute_script(ids)]
    while css(browser, "#batches-later")[0].is_enabled():
        css(browser, "#batches-later")[0].click()
        # The view is emptied while the next page loads: wait for rows, and other ones.
        wait_for(browser, lambda d, seen=pages[-1]: d.execute_script(ids) not in ([], seen), "the next page")
        pages.append(browser.execute_script(ids))
    assert len(pages) > 1 and f"offset={BATCH_PAGE * (len(pages) - 1)}" in browser.current_url
    assert [batch_id for page in pages for batch_id in page] == [b.batch_id for b in ledger.list_batches()]
    css(browser, "#batches-earlier")[0].click()
    wait_for(browser, lambda d: d.execute_script(ids) == pages[-2], "the page before")


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


def test_the_graph_fits_pans_and_zooms_and_the_state_panel_stays_in_view(browser, site, artifacts):
    """One page load: fitted at first, wheel, drag and buttons, Fit again, the state panel in view
    when a state low in the graph is chosen, and the README's screenshot of this page."""
    from selenium.webdriver.common.action_chains import ActionChains

    browser.set_window_size(*SCREEN)
    open_execution(browser, site, SUCCEEDED)
    wait_for(browser, lambda d: d.execute_script("return !!document.getElementById('graph').__panzoom"),
             "pan and zoom on the graph")
    fitted = graph_geometry(browser)
    assert inside(fitted["graph"], fitted["pane"]), fitted  # the whole graph on screen at first
    click_state(browser, "FinalMerge")
    wait_for(browser, lambda d: css(d, "#state-output"), "FinalMerge's output")
    browser.execute_script("window.scrollTo(0, document.querySelector('.graph-section').offsetTop - 8)")
    check_docs_screenshot("console-graph.png", browser.get_screenshot_as_png())

    browser.execute_script("""
        const pane = document.getElementById('graph'), r = pane.getBoundingClientRect();
        for (let turn = 0; turn < 4; turn++) {
          pane.dispatchEvent(new WheelEvent('wheel', {deltaY: -300, clientX: r.left + r.width / 2,
                                                      clientY: r.top + r.height / 2, bubbles: true,
                                                      cancelable: true}));
        }""")
    wait_for(browser, lambda d: graph_geometry(d)["scale"] > fitted["scale"] * 1.3, "the wheel to zoom in")
    zoomed = graph_geometry(browser)
    assert zoomed["nameHeight"] > fitted["nameHeight"] * 1.3  # the text grows with it

    pane = css(browser, "#graph")[0]
    ActionChains(browser).move_to_element_with_offset(pane, 5, 5).click_and_hold().move_by_offset(90, 60) \
        .release().perform()
    dragged = graph_geometry(browser)
    assert dragged["graph"][0] == pytest.approx(zoomed["graph"][0] + 90, abs=3)
    assert dragged["graph"][1] == pytest.approx(zoomed["graph"][1] + 60, abs=3)

    css(browser, "#graph-zoom-in")[0].click()
    assert graph_geometry(browser)["scale"] > dragged["scale"]
    css(browser, "#graph-fit")[0].click()
    # A poll's redraw may land just after the click: its new Panzoom applies the fitted start a moment
    # after it starts (graph.js panZoom), so the fit is judged once the page has settled.
    wait_for(browser, lambda d: inside(graph_geometry(d)["graph"], graph_geometry(d)["pane"]),
             "Fit to show the whole graph in its pane")
    refitted = graph_geometry(browser)
    assert refitted["scale"] == pytest.approx(fitted["scale"])
    assert inside(refitted["graph"], refitted["pane"])
    save_screenshot(browser, artifacts, "graph-fitted")

    # Scrolled down past the top of the graph's section (where the panel starts), a state chosen: the
    # panel sticks to the top of the window.
    browser.execute_script("const section = document.querySelector('.graph-section');"
                           "window.scrollTo(0, section.getBoundingClientRect().top + window.scrollY + 300)")
    click_state(browser, "MarkBatchesComplete")
    section_top, top, bottom, height = browser.execute_script(
        "const r = document.getElementById('state-detail').getBoundingClientRect();"
        "return [document.querySelector('.graph-section').getBoundingClientRect().top, r.top, r.bottom,"
        " window.innerHeight]")
    assert section_top < -200  # where the panel would be without sticking
    assert 0 <= top < height and bottom > top + 100, (top, bottom, height)
    assert csp_violations(browser) == []


def test_a_query_link_runs_its_search_and_the_results_are_compact(browser, site, workspace):
    from urllib.parse import quote

    from embedding_ingest.stores.records import EmbeddingStatus

    published = workspace.workspace.ledger.find_items(ItemKind.LINE, EmbeddingStatus.SUCCESS)
    wanted = next(item.text for item in published if item.text.isascii() and "<" not in item.text)
    browser.get(f"{site}/#/query?kind=line&text={quote(wanted)}&n=5")
    wait_for(browser, lambda d: css(d, "#query-table tr.hit"), "the hits of the linked query")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#query-table tr.hit')).map((r) =>"
        " [r.getAttribute('data-id'), Array.from(r.cells).map((c) => c.textContent)])")
    assert len(rows) == 5 and wanted in [cells[2] for _, cells in rows]  # it ran, without a click
    assert browser.execute_script("return document.getElementById('query-text').value") == wanted
    receipts = {item.image_id for item in published}
    for item_id, cells in rows:  # the user's receipt_id and the receipt's number, not a wide id column
        assert cells[3] in receipts and f"IMAGE#{cells[3]}#RECEIPT#{int(cells[4]):05d}#LINE#" in item_id
    headers = browser.execute_script(
        "return Array.from(document.querySelectorAll('#query-table th')).map((t) => t.textContent)")
    assert headers == ["#", "Distance", "Text", "Receipt", "Receipt number", "Line", "Merchant"]


def test_the_dashboard_draws_its_four_charts_from_the_workspace(browser, site, workspace, artifacts):
    from embedding_ingest.pipeline.engine_store import describe_execution
    from embedding_ingest.pipeline.report import summarize_execution
    from embedding_ingest.stores.records import EmbeddingStatus

    ledger = workspace.workspace.ledger
    browser.set_window_size(*SCREEN)
    browser.get(f"{site}/#/dashboard")
    wait_for(browser, lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('canvas')).filter((c) => Chart.getChart(c)).length")
        == 4,
        "the four charts")
    charts = {name: chart(browser, name) for name in ("chart-items", "chart-usage", "chart-timeline",
                                                      "chart-executions")}
    assert all(drawn["painted"] > 500 for drawn in charts.values())  # drawn, not blank

    items = charts["chart-items"]
    assert items["labels"] == ["lines", "words"]
    for dataset in items["datasets"]:
        status = EmbeddingStatus(dataset["label"])
        assert dataset["data"] == [ledger.count_items(kind).get(status, 0) for kind in ItemKind]

    batches = ledger.list_batches()
    usage = charts["chart-usage"]
    line_tokens = next(d for d in usage["datasets"] if d["label"] == "line tokens")
    assert sum(line_tokens["data"]) == sum(b.tokens or 0 for b in batches
                                           if b.batch_type.value.startswith("LINE"))

    timeline = charts["chart-timeline"]
    assert len(timeline["labels"]) == len(batches)
    by_label = dict(zip(timeline["labels"], zip(*(d["data"] for d in timeline["datasets"]), strict=True),
                        strict=True))
    published = [b for b in batches if b.published_at]
    assert published and all(b.results_at for b in published)
    for batch in published:
        waiting, publishing = by_label[f"line {batch.batch_id[:8]}"]
        assert waiting[0] == pytest.approx(batch.submitted_at * 1000)
        assert publishing == pytest.approx([batch.results_at * 1000, batch.published_at * 1000])

    runs = charts["chart-executions"]
    succeeded = summarize_execution(describe_execution(ledger.get_execution(SUCCEEDED)))
    published_by = dict(zip(runs["labels"], runs["datasets"][0]["data"], strict=True))
    assert published_by[SUCCEEDED] == succeeded["embeddings_published"] > 0
    assert published_by[FAILED] == 0
    assert csp_violations(browser) == []
    browser.execute_script("window.scrollTo(0, 0)")
    check_docs_screenshot("console-dashboard.png", browser.get_screenshot_as_png())
    save_screenshot(browser, artifacts, "dashboard")
