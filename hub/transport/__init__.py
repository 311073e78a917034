"""hub.transport"""
