"""hub.wire"""
