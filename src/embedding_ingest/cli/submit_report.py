"""How `submit` (and `submit --dry-run`) shows what it sent or would send: batches, tokens, cost,
and the items left waiting for the enqueued budgets."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from embedding_ingest.cli.output import counted
from embedding_ingest.cli.tables import Column, fitted


def render_submit_report(r: dict[str, Any], known_batch_ids: list[str]) -> list[Any]:
    """`r` is SubmitReport.model_dump(mode="json") plus SubmitReport.totals(); `known_batch_ids` every
    batch id in the ledger (ids show as prefixes unique among them)."""
    if not r["batches"] and not r["refused"]:
        waiting = r["items_waiting_for_budget"]
        rendered: list[Any] = [Text(f"nothing to submit: no {r['kind']} is waiting" if not waiting else
                                    f"nothing submitted: {counted(waiting, r['kind'])} wait for budget "
                                    f"(the next batch would pass {r['budget_exhausted']})")]
        return rendered
    verb = "Would submit" if r["dry_run"] else "Submitted"
    title = (f"{verb} {counted(r['items_submitted'], r['kind'])} in {counted(len(r['batches']), 'batch')}: "
             f"{r['tokens_submitted']:,} tokens, est. ${r['estimated_cost_usd']:.6f}")
    rendered = [fitted(title, [Column("batch", ids=known_batch_ids), Column("items", justify="right"),
                               Column("tokens", justify="right"),
                               Column("truncated", justify="right", drop=2),
                               Column("bytes", justify="right", drop=3), Column("resumed", drop=4),
                               Column("provider batch", drop=5)],
                       [[b["batch_id"], b["item_count"], f"{b['tokens']:,}", b["truncated"] or None,
                         f"{b['bytes']:,}", "yes" if b["resumed"] else None, b["provider_batch_id"]]
                        for b in r["batches"]])]
    priced = f"priced at {r['priced_as']}'s batch price (${r['price_per_million_usd']}/1M tokens)"
    if r["priced_as"] != r["model"]:
        priced += (f"; the batches use {r['model']}, which costs nothing here (the price shown is "
                   "OpenAI's, for reference)")
    rendered.append(Text(priced))
    enqueued = r.get("enqueued_before") or {}
    rendered.append(Text(f"enqueued at the provider for {r['model']} before this submit: "
                         f"{enqueued.get('tokens', 0):,} of {r['token_budget']:,} tokens, "
                         f"{enqueued.get('requests', 0):,} of {r['request_budget']:,} requests"))
    if r["truncated_items"]:
        rendered.append(Text(f"{counted(r['truncated_items'], 'item')} shortened to the 8,192-token input "
                             "limit"))
    if r["items_waiting_for_budget"]:
        rendered.append(Text(f"{counted(r['items_waiting_for_budget'], r['kind'])} wait for budget: the next "
                             f"batch would pass {r['budget_exhausted']}; submit again once batches finish",
                             style="yellow"))
    if r["refused"]:
        rendered.append(fitted("Refused by the provider (items released)",
                               [Column("batch", ids=known_batch_ids), Column("items", justify="right"),
                                Column("reason", wrap=True)],
                               [[b["batch_id"], b["item_count"], b["reason"]] for b in r["refused"]]))
    if r["dry_run"]:
        rendered.append(Text("dry run: nothing was claimed or sent", style="bold"))
    return rendered
