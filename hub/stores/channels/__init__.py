"""hub.stores.channels"""
