"""One router per resource: health, qa (ask/search), documents, openai (/v1)."""
