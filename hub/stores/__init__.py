"""Store families (presence, registry, channels): each a contract, a memory and a Redis backend."""
