"""Map (inline): run the item processor once per item, at most MaxConcurrency at a time, in threads.

Iterations record their events on their own branch of the history. When one iteration fails the Map
fails with that iteration's error; iterations not started yet are skipped (running ones finish)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from embedding_ingest.workflow.engine.core import COMMON_FIELDS, Branch, Program, State, failure_details
from embedding_ingest.workflow.engine.error_handling import ErrorHandling
from embedding_ingest.workflow.exceptions import STATES_RUNTIME, StatesFailure
from embedding_ingest.workflow.limits import check_payload, to_json
from embedding_ingest.workflow.paths import apply_result_path, evaluate_template, select_for


class MapState(ErrorHandling, State):
    type_name = "Map"
    fields = COMMON_FIELDS | {"ItemsPath", "ItemSelector", "Parameters", "ItemProcessor", "Iterator",
                              "MaxConcurrency", "ResultSelector", "ResultPath", "Retry", "Catch"}

    def __init__(self, name: str, spec: dict[str, Any], processor: Program) -> None:
        super().__init__(name, spec)
        self.processor = processor
        self.items_path: str = spec.get("ItemsPath", "$")
        self.item_selector = spec.get("ItemSelector", spec.get("Parameters"))
        self.max_concurrency: int = spec.get("MaxConcurrency", 0)
        self.result_path: str | None = spec.get("ResultPath", "$")
        self.init_error_handling(spec)

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        data = self.effective_input(raw_input, context)
        items = data if self.items_path == "$" else select_for(self.items_path, data, context,
                                                               state=self.name, field="ItemsPath")
        if not isinstance(items, list):
            raise StatesFailure(STATES_RUNTIME, f"Map state '{self.name}': ItemsPath {self.items_path!r} "
                                                f"must select a JSON array, got {to_json(items)[:200]}")
        branch.record("MapStateStarted", {"length": len(items)})
        run = branch.run
        try:
            results = self.with_retries(lambda _retry: self._iterate(branch, data, items, context),
                                        sleep=run.sleep, jitter=run.jitter)
        except StatesFailure as failure:
            if not failure.catchable:
                raise
            branch.record("MapStateFailed", failure_details(failure))
            return self.caught(failure, raw_input)
        branch.record("MapStateSucceeded")
        if "ResultSelector" in self.spec:
            results = evaluate_template(self.spec["ResultSelector"], results, context, state=self.name,
                                        field="ResultSelector")
        output = apply_result_path(self.result_path, raw_input, results, state=self.name)
        return self.next_state, self.state_output(output, context)

    def _iterate(self, branch: Branch, data: Any, items: list[Any], context: dict[str, Any]) -> list[Any]:
        results: list[Any] = [None] * len(items)
        failures: list[StatesFailure] = []
        failed = threading.Event()
        started_from = branch.last_event
        last_events = [started_from]
        lock = threading.Lock()

        def iterate(index: int) -> None:
            if failed.is_set():
                return
            item_branch = Branch(branch.run, started_from)
            try:
                item_branch.record("MapIterationStarted", {"name": self.name, "index": index})
                item_input = items[index]
                if self.item_selector is not None:
                    item_context = {**context, "Map": {"Item": {"Index": index, "Value": items[index]}}}
                    item_input = evaluate_template(self.item_selector, data, item_context,
                                                   state=self.name, field="ItemSelector")
                check_payload(item_input, state=self.name, what=f"iteration {index} input")
                results[index] = self.processor.run(item_branch, item_input)
                item_branch.record("MapIterationSucceeded", {"name": self.name, "index": index})
            except StatesFailure as failure:
                failed.set()
                with lock:
                    failures.append(failure)
                if failure.catchable:  # past the history limit nothing more may be recorded
                    item_branch.record("MapIterationFailed", {"name": self.name, "index": index})
            finally:
                with lock:
                    last_events.append(item_branch.last_event)

        workers = self.max_concurrency or len(items)
        workers = max(1, min(workers, len(items), branch.run.max_map_threads))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"map-{self.name}") as pool:
            list(pool.map(iterate, range(len(items))))
        branch.last_event = max(last_events)
        if failures:
            raise next((f for f in failures if not f.catchable), failures[0])
        return results
