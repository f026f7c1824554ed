-- Messages had two indexes led by the conversation: (conversation_id, seq), which is
-- unique, and (conversation_id, id). Within one conversation seq and id rise together
-- (the one writer hands out both, in the same order), so the first serves every query the
-- second did: resume and head now go by seq. Every commit wrote one page of each index
-- per conversation that had a new message; with one index, a commit of messages to 100
-- conversations writes ~40 % fewer pages (and natterd stores ~10 % more messages per
-- CPU-second under workload 2 of docs/BENCHMARKS.md).
DROP INDEX messages_by_conversation_id;
