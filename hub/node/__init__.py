"""hub.node.node"""
