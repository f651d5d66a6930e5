"""Model bundles shipped with the package; default/ is the one `chatbot` chats with."""
