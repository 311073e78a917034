"""The presence model and the checks on what enters: pure code, no I/O, no clock."""
