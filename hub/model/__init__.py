"""hub.model"""
