"""How `submit` (and `submit --dry-run`) shows what it sent or would send: batches, tokens, cost,
and the items left waiting for the enqueued budgets."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from embedding_ingest.cli.output import counted, table


def render_submit_report(r: dict[str, Any]) -> list[Any]:
    """`r` is SubmitReport.model_dump(mode="json") plus SubmitReport.totals()."""
    verb = "Would submit" if r["dry_run"] else "Submitted"
    title = (f"{verb} {counted(r['items_submitted'], r['kind'])} in {counted(len(r['batches']), 'batch')}: "
             f"{r['tokens_submitted']:,} tokens, est. ${r['estimated_cost_usd']:.6f} "
             f"at {r['priced_as']} batch price (${r['price_per_million_usd']}/1M tokens)")
    rendered: list[Any] = [table(title, ["batch_id", "provider batch", "items", "tokens", "truncated",
                                         "bytes", "resumed"],
                                 [[b["batch_id"], b["provider_batch_id"] or "-", b["item_count"],
                                   b["tokens"], b["truncated"], b["bytes"], b["resumed"]]
                                  for b in r["batches"]])]
    enqueued = r.get("enqueued_before") or {}
    rendered.append(Text(f"enqueued at the provider for {r['model']} before this submit: "
                         f"{enqueued.get('tokens', 0):,} of {r['token_budget']:,} tokens, "
                         f"{enqueued.get('requests', 0):,} of {r['request_budget']:,} requests; "
                         f"{r['truncated_items']} item(s) shortened to the 8,192-token input limit"))
    if r["items_waiting_for_budget"]:
        rendered.append(Text(f"{r['items_waiting_for_budget']} {r['kind']}s wait for budget: the next "
                             f"batch would pass {r['budget_exhausted']}; submit again once batches finish",
                             style="yellow"))
    if r["refused"]:
        rendered.append(table("Refused by the provider (items released)", ["batch_id", "items", "reason"],
                              [[b["batch_id"], b["item_count"], b["reason"]] for b in r["refused"]]))
    if r["dry_run"]:
        rendered.append(Text("dry run: nothing was claimed or sent", style="bold"))
    return rendered
