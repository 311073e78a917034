"""One connection's life: the pure rules of each wire, and the bounded outbox."""
