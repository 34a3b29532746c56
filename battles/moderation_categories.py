"""The moderation categories of the public dataset (`openai_moderation` in
chatbot_arena_conversations), in its order.

A module of its own, importing nothing, so the settings can check ARENA_MODERATION_TERMS
against the same names battles/moderation.py labels battles with.
"""

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
