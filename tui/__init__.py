"""The staff terminal UI (Textual): consultants' live chats, archive, requests, retention, audit, accounts."""
