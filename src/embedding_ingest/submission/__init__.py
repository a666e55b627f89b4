"""Sending work to the provider: `submit` claims un-embedded items and sends them as batches, packed
by `packing` within the provider's limits and the `budgets` of tokens still enqueued; `deletions`
queues removed items as deletion batches that travel through the same workflow."""
