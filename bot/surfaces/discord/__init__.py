"""The Discord surface: thin glue from Discord events to the answering engine and back."""

from .app import BriefBot, create_bot

__all__ = ["BriefBot", "create_bot"]
