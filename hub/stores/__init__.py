"""Store families (presence, registry, channels), each a contract with a memory and a Redis backend."""
