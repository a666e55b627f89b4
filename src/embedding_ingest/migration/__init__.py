"""Changing the embedding model or width of a kind that is already published (issue 19).

A migration re-embeds every item of the kind with the target model and builds its snapshot under a
second pointer of the same database ("staging"), through the normal workflows, while queries keep
reading the live pointer; when every item is embedded with the target it switches the live pointer to
the staging version in one conditional write (a rollback switches back). Its record in the ledger
(stores.records.MigrationRecord) moves REQUEUING -> BUILDING -> SWITCHED (-> ROLLED_BACK), each step a
write conditional on the state before, so a half-finished migration survives crashes and reruns.

- state.py: the record, the staging pointer, what submit must embed with;
- pointers.py: which pointer a publish goes to and which settles a batch (FinalMerge,
  MarkBatchesComplete), and the hook that applies deletions (and, later, metadata) to both;
- start.py: plan (tokens and cost), start and resume (`embedding-ingest migrate KIND`);
- switch.py: the switch and the rollback.
"""
