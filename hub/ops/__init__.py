"""Running the hub: the app's wiring, the command line, settings, logs, metrics, workers."""
