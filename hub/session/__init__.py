"""hub.session.core"""
