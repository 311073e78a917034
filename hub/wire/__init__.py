"""Frame shapes of each wire (hub, Pusher) and of the messages other services read: pure."""
