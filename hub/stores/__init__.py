"""hub.stores"""
