"""hub.clients"""
