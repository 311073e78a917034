"""hub.ops"""
