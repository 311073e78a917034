"""Frame shapes of each wire (the hub's own, Pusher's) and of the messages other services read: pure."""
