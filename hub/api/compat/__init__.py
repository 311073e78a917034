"""Vendor-compatible APIs at the vendors' own paths (Rocket.Chat, CometChat, Agora, iFlyChat)."""
