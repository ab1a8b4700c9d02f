"""A fake Discord (REST + gateway WebSocket) on 127.0.0.1 for driving the real discord.py client.

Only the routes the bot is expected to use are known; any other request is recorded in
``unknown`` and the test fixture fails the test with it, so a bot that starts calling something
new is noticed instead of silently passing. Everything the bot sends is kept in ``requests``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from urllib.parse import quote
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from .ca import HOSTS, TestTLS, make_tls

DISCORD_EPOCH_MS = 1420070400000
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
# view channel, send messages, read history, embed links, attach files, threads ...
MEMBER_PERMS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 35) | (1 << 38)


class FakeResolver(AbstractResolver):
    """Resolves Discord's host names to the fake server, and refuses every other host."""

    def __init__(self, port: int):
        self.port = port

    async def resolve(self, host, port=0, family=socket.AF_INET):
        if host not in HOSTS:
            raise OSError(f"fake resolver: refusing to resolve {host!r}")
        return [
            {"hostname": host, "host": "127.0.0.1", "port": self.port, "family": socket.AF_INET,
             "proto": 0, "flags": socket.AI_NUMERICHOST}
        ]

    async def close(self):
        return None


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py insists on exactly "application/json" (no charset) before it parses a body.
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


@dataclass
class Recorded:
    """One request the bot made."""

    method: str
    path: str
    query: dict
    json: Any
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeInteraction:
    """An interaction the fake sent, with everything the bot answered to it."""

    id: str
    token: str
    sent_at: float
    payload: dict
    callback: dict | None = None
    callback_at: float | None = None
    answered_at: float | None = None  # first follow-up / edit carrying content or embeds
    followups: list[dict] = field(default_factory=list)  # message payloads the bot sent
    edits: list[dict] = field(default_factory=list)  # edits of the original response
    messages: list[dict] = field(default_factory=list)  # message objects created by followups
    event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ack_seconds(self) -> float | None:
        return None if self.callback_at is None else self.callback_at - self.sent_at

    @property
    def replies(self) -> list[dict]:
        """Every message body the bot produced for this interaction, in order."""
        out = []
        if self.callback and self.callback.get("type") == 4:
            out.append(self.callback.get("data") or {})
        out.extend(self.edits)
        out.extend(self.followups)
        return out

    async def wait(self, predicate: Callable[["FakeInteraction"], bool], timeout: float = 30.0) -> "FakeInteraction":
        async def loop():
            while not predicate(self):
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(loop(), timeout)
        return self

    async def wait_answer(self, timeout: float = 30.0) -> dict:
        """The first message body with content or embeds (a defer alone is not an answer)."""
        await self.wait(lambda i: any(r.get("embeds") or r.get("content") for r in i.replies), timeout)
        return next(r for r in self.replies if r.get("embeds") or r.get("content"))


class Gateway:
    """One WebSocket connection from the bot."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request):
        self.ws = ws
        self.request = request
        self.identified = asyncio.Event()


class FakeDiscord:
    def __init__(self, tls: TestTLS | None = None):
        self.tls = tls or make_tls()
        self._ids = itertools.count(1)
        self.app_id = self.snowflake()
        self.bot_user = self.user("briefbot", bot=True)
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()
        self.admin_role_id = self.snowflake()
        self.requests: list[Recorded] = []
        self.unknown: list[str] = []
        self.errors: list[str] = []
        self.interactions: dict[str, FakeInteraction] = {}
        self.messages: dict[str, list[dict]] = {}  # channel id -> messages, bot and users
        self.threads: dict[str, dict] = {}
        self.commands: dict[str, list[dict]] = {}  # "global" or guild id -> synced commands
        self.attachments: dict[str, bytes] = {}
        self.tokens_ok = {"test-token"}
        self.gateways: list[Gateway] = []
        self.session_id = "session-1"
        self.session_valid = True
        self.seq = 0
        self.backlog: list[dict] = []  # dispatched payloads, for RESUME replay
        self.identifies = 0
        self.resumes = 0
        self.changed = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.dm_channels: dict[str, dict] = {}
        # more servers: guild id -> its one text channel; channel/thread id -> guild id
        self.guild_channels: dict[str, str] = {self.guild_id: self.channel_id}
        self.channel_guild: dict[str, str] = {self.channel_id: self.guild_id}
        self.sync_forbidden: set[str] = set()  # guild ids whose command sync answers 403

    # ---- ids and payloads -------------------------------------------------------------------
    def snowflake(self) -> str:
        return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) + next(self._ids))

    def user(self, name: str, bot: bool = False) -> dict:
        return {"id": self.snowflake(), "username": name, "discriminator": "0", "global_name": name,
                "avatar": None, "bot": bot, "public_flags": 0}

    def member(self, user: dict, roles: list[str] = (), permissions: int = MEMBER_PERMS) -> dict:
        return {"user": user, "roles": list(roles), "joined_at": _now_iso(), "deaf": False, "mute": False,
                "flags": 0, "nick": None, "pending": False, "permissions": str(permissions)}

    def guild_of(self, channel_id: str | None) -> str:
        return self.channel_guild.get(channel_id or self.channel_id, self.guild_id)

    async def add_guild(self) -> tuple[str, str]:
        """A second (third ...) server the bot is in, with one text channel: (guild id, channel id)."""
        gid, cid = self.snowflake(), self.snowflake()
        self.guild_channels[gid] = cid
        self.channel_guild[cid] = gid
        if any(g.identified.is_set() for g in self.gateways):
            await self.dispatch("GUILD_CREATE", self.guild_payload(gid))
        return gid, cid

    def channel(self, channel_id: str | None = None) -> dict:
        cid = channel_id or self.channel_id
        if cid in self.threads:
            return self.threads[cid]
        if cid in self.dm_channels:
            return self.dm_channels[cid]
        return {"id": cid, "type": 0, "name": "general", "guild_id": self.guild_of(cid), "position": 0,
                "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}

    def guild_payload(self, guild_id: str | None = None) -> dict:
        gid = guild_id or self.guild_id
        roles = [
            {"id": gid, "name": "@everyone", "permissions": str(MEMBER_PERMS), "position": 0,
             "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
            {"id": self.admin_role_id, "name": "briefing-admins", "permissions": str(MEMBER_PERMS),
             "position": 1, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
        ]
        bot_member = self.member(self.bot_user, permissions=MEMBER_PERMS)
        return {"id": gid, "name": "Briefing Team", "icon": None, "owner_id": self.snowflake(),
                "roles": roles, "channels": [self.channel(self.guild_channels[gid])],
                "threads": [t for t in self.threads.values() if t["guild_id"] == gid],
                "members": [bot_member], "member_count": 3, "unavailable": False, "large": False,
                "emojis": [], "stickers": [], "features": [], "voice_states": [], "presences": [],
                "stage_instances": [], "guild_scheduled_events": [], "premium_tier": 0,
                "joined_at": _now_iso(), "afk_timeout": 300, "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
                "system_channel_flags": 0, "preferred_locale": "en-US", "nsfw_level": 0}

    def message(self, *, channel_id: str, author: dict, content: str = "", embeds=(), components=(),
                mentions=(), reference: str | None = None, attachments=(), flags: int = 0,
                webhook_id: str | None = None, guild: bool = True) -> dict:
        msg = {"id": self.snowflake(), "channel_id": channel_id, "author": author, "content": content,
               "timestamp": _now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
               "mentions": list(mentions), "mention_roles": [], "attachments": list(attachments),
               "embeds": list(embeds), "components": list(components), "pinned": False,
               "type": 19 if reference else 0, "flags": flags}
        if guild and channel_id not in self.dm_channels:
            msg["guild_id"] = self.guild_of(channel_id)
        if reference:
            msg["message_reference"] = {"message_id": reference, "channel_id": channel_id}
        if webhook_id:
            msg["webhook_id"] = webhook_id
            msg["application_id"] = self.app_id
        return msg

    # ---- lifecycle --------------------------------------------------------------------------
    async def start(self) -> "FakeDiscord":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = app.router
        api = "/api/v{v:\\d+}"
        r.add_get("/", self._gateway)
        r.add_get(api + "/users/@me", self._me)
        r.add_get(api + "/oauth2/applications/@me", self._application)
        r.add_put(api + "/applications/{app}/commands", self._sync)
        r.add_put(api + "/applications/{app}/guilds/{guild}/commands", self._sync)
        r.add_post(api + "/interactions/{iid}/{token}/callback", self._callback)
        r.add_post(api + "/webhooks/{app}/{token}", self._followup)
        r.add_patch(api + "/webhooks/{app}/{token}/messages/{mid}", self._edit_webhook_message)
        r.add_post(api + "/channels/{cid}/messages", self._create_message)
        r.add_post(api + "/channels/{cid}/typing", self._typing)
        r.add_post(api + "/channels/{cid}/messages/{mid}/threads", self._create_thread)
        r.add_get("/attachments/{cid}/{aid}/{name:.+}", self._attachment)
        r.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    def connector(self, **kwargs) -> aiohttp.TCPConnector:
        """What a test hands to ``create_bot(connector=...)``: Discord's hosts lead here, over TLS."""
        return aiohttp.TCPConnector(resolver=FakeResolver(self.port), ssl=self.tls.client, **kwargs)

    async def close(self) -> None:
        for gw in list(self.gateways):
            await gw.ws.close()
        if self._runner:
            await self._runner.cleanup()

    def _touch(self) -> None:
        self.changed.set()
        for inter in self.interactions.values():
            inter.event.set()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 30.0):
        async def loop():
            while True:
                value = predicate()
                if value:
                    return value
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    # ---- recording --------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> Recorded:
        body: Any = None
        files: dict[str, bytes] = {}
        ctype = request.content_type
        if ctype == "application/json":
            body = await request.json()
        elif ctype.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()
                if part.name == "payload_json":
                    body = json.loads(data)
                else:
                    files[part.filename or part.name] = bytes(data)
        rec = Recorded(request.method, request.path, dict(request.query), body, files)
        self.requests.append(rec)
        return rec

    def sent_bodies(self) -> list[dict]:
        """Every JSON body the bot sent that can create or edit a message."""
        out = []
        for rec in self.requests:
            body = rec.json
            if not isinstance(body, dict):
                continue
            if rec.path.endswith("/callback"):
                body = body.get("data") or {}
                if not body:
                    continue
            if any(k in body for k in ("content", "embeds", "allowed_mentions")):
                out.append(body)
        return out

    def bot_messages(self, channel_id: str | None = None) -> list[dict]:
        chans = [channel_id] if channel_id else list(self.messages)
        return [m for c in chans for m in self.messages.get(c, []) if m["author"]["id"] == self.bot_user["id"]]

    # ---- REST handlers ----------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bot ") and auth[4:] in self.tokens_ok

    async def _unknown(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.unknown.append(f"{request.method} {request.host}{request.path_qs}")
        self._touch()
        return _json({"message": "404: Not Found (fake Discord does not know this route)", "code": 0}, 404)

    async def _me(self, request: web.Request) -> web.Response:
        await self._record(request)
        if not self._authorized(request):
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        return _json(self.bot_user)

    async def _application(self, request: web.Request) -> web.Response:
        await self._record(request)
        owner = self.user("owner")
        return _json({"id": self.app_id, "name": "briefbot", "description": "", "icon": None,
                      "bot_public": False, "bot_require_code_grant": False, "owner": owner,
                      "team": None, "verify_key": "00", "flags": 0, "summary": ""})

    async def _sync(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        key = request.match_info.get("guild", "global")
        if key != "global" and (key not in self.guild_channels or key in self.sync_forbidden):
            self._touch()
            return _json({"message": "Missing Access", "code": 50001}, 403)
        out = []
        for cmd in rec.json or []:
            out.append({**cmd, "id": self.snowflake(), "application_id": self.app_id, "version": "1",
                        "default_member_permissions": cmd.get("default_member_permissions"),
                        **({"guild_id": key} if key != "global" else {})})
        self.commands[key] = out
        self._touch()
        return _json(out)

    async def _callback(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        inter = self.interactions.get(request.match_info["iid"])
        if inter is None or inter.token != request.match_info["token"]:
            self.errors.append(f"callback for unknown interaction {request.path}")
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if inter.callback is not None:
            self.errors.append(f"interaction {inter.id} acknowledged twice")
            return _json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        inter.callback, inter.callback_at = rec.json, time.monotonic()
        rtype = rec.json.get("type")
        resource: dict = {"type": rtype}
        if rtype in (4, 5, 7):
            data = rec.json.get("data") or {}
            # a deferral creates the original response as a "loading" message (flag 128)
            msg = self.message(channel_id=inter.payload.get("channel_id", self.channel_id),
                               author=self.bot_user, content=data.get("content", ""),
                               embeds=data.get("embeds", []), components=data.get("components", []),
                               flags=data.get("flags", 0) | (128 if rtype == 5 else 0), webhook_id=self.app_id)
            resource["message"] = msg
            self.messages.setdefault(msg["channel_id"], []).append(msg)
            inter.messages.append(msg)
        self._touch()
        body = {"interaction": {"id": inter.id, "type": inter.payload["type"],
                                "response_message_id": resource.get("message", {}).get("id"),
                                "response_message_loading": rtype == 5,
                                "response_message_ephemeral": bool((rec.json.get("data") or {}).get("flags", 0) & 64)},
                "resource": resource}
        return _json(body)

    def _interaction_by_token(self, token: str) -> FakeInteraction | None:
        return next((i for i in self.interactions.values() if i.token == token), None)

    async def _followup(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        inter = self._interaction_by_token(request.match_info["token"])
        if inter is None:
            self.errors.append("followup for unknown interaction token")
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        if inter.callback is None:
            self.errors.append(f"followup before acknowledgement on interaction {inter.id}")
        body = rec.json or {}
        inter.followups.append(body)
        if inter.answered_at is None and (body.get("content") or body.get("embeds")):
            inter.answered_at = time.monotonic()
        channel_id = inter.payload.get("channel_id", self.channel_id)
        loading = next((m for m in inter.messages if m["flags"] & 128), None)
        if loading is not None:
            # As on Discord, the first follow-up after a deferral fills in the "thinking" message.
            loading.update(content=body.get("content", ""), embeds=body.get("embeds", []),
                           components=body.get("components", []), flags=loading["flags"] & ~128)
            self._touch()
            return _json(loading) if request.query.get("wait") in ("true", "1") else web.Response(status=204)
        msg = self.message(channel_id=channel_id, author=self.bot_user, content=body.get("content", ""),
                           embeds=body.get("embeds", []), components=body.get("components", []),
                           flags=body.get("flags", 0), webhook_id=self.app_id,
                           attachments=[{"id": self.snowflake(), "filename": n, "size": len(b)} for n, b in rec.files.items()])
        self.messages.setdefault(channel_id, []).append(msg)
        inter.messages.append(msg)
        self._touch()
        return _json(msg) if request.query.get("wait") in ("true", "1") else web.Response(status=204)

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        inter = self._interaction_by_token(request.match_info["token"])
        if inter is None:
            self.errors.append("edit for unknown interaction token")
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        body = rec.json or {}
        inter.edits.append(body)
        if inter.answered_at is None and (body.get("content") or body.get("embeds")):
            inter.answered_at = time.monotonic()
        target = inter.messages[0] if inter.messages else self.message(
            channel_id=inter.payload.get("channel_id", self.channel_id), author=self.bot_user, webhook_id=self.app_id)
        for key in ("content", "embeds", "components"):
            if key in body:
                target[key] = body[key]
        self._touch()
        return _json(target)

    async def _create_message(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        cid = request.match_info["cid"]
        if not self._authorized(request):
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        body = rec.json or {}
        ref = (body.get("message_reference") or {}).get("message_id")
        ref = str(ref) if ref is not None else None
        msg = self.message(channel_id=cid, author=self.bot_user, content=body.get("content", ""),
                           embeds=body.get("embeds", []), components=body.get("components", []), reference=ref,
                           attachments=[{"id": self.snowflake(), "filename": n, "size": len(b)} for n, b in rec.files.items()])
        self.messages.setdefault(cid, []).append(msg)
        self._touch()
        return _json(msg)

    async def _typing(self, request: web.Request) -> web.Response:
        await self._record(request)
        self._touch()
        return web.Response(status=204)

    async def _create_thread(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        cid, mid = request.match_info["cid"], request.match_info["mid"]
        self.channel_guild[mid] = self.guild_of(cid)
        thread = {"id": mid, "guild_id": self.guild_of(cid), "parent_id": cid, "owner_id": self.bot_user["id"],
                  "name": (rec.json or {}).get("name", "thread"), "type": 11, "message_count": 0,
                  "member_count": 1, "rate_limit_per_user": 0, "flags": 0, "last_message_id": None,
                  "thread_metadata": {"archived": False, "auto_archive_duration": (rec.json or {}).get("auto_archive_duration", 1440),
                                      "archive_timestamp": _now_iso(), "locked": False}}
        self.threads[mid] = thread
        self._touch()
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread)

    async def _attachment(self, request: web.Request) -> web.Response:
        await self._record(request)
        data = self.attachments.get(request.match_info["aid"])
        if data is None:
            self.unknown.append(f"GET attachment {request.path}")
            return web.Response(status=404)
        return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})

    # ---- gateway ----------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if request.host.split(":")[0] != "gateway.discord.gg" or not request.headers.get("Upgrade"):
            return await self._unknown(request)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        gw = Gateway(ws, request)
        self.gateways.append(gw)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                await self._gateway_op(gw, data)
        finally:
            if gw in self.gateways:
                self.gateways.remove(gw)
            self._touch()
        return ws

    async def _gateway_op(self, gw: Gateway, data: dict) -> None:
        op = data.get("op")
        if op == 1:
            await gw.ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
        elif op == 2:
            if data["d"].get("token") not in self.tokens_ok:
                await gw.ws.close(code=4004, message=b"Authentication failed.")
                return
            self.identifies += 1
            self.session_id = f"session-{self.identifies}"
            self.session_valid = True
            self.seq = 0
            self.backlog.clear()
            ready = {"v": 10, "user": self.bot_user, "guilds": [{"id": g, "unavailable": True} for g in self.guild_channels],
                     "session_id": self.session_id, "resume_gateway_url": "wss://gateway.discord.gg",
                     "application": {"id": self.app_id, "flags": 0}, "private_channels": [],
                     "relationships": [], "shard": [0, 1]}
            await self._send_dispatch(gw, "READY", ready)
            for gid in self.guild_channels:
                await self._send_dispatch(gw, "GUILD_CREATE", self.guild_payload(gid))
            gw.identified.set()
            self._touch()
        elif op == 6:
            d = data["d"]
            if not self.session_valid or d.get("session_id") != self.session_id:
                await gw.ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
                return
            self.resumes += 1
            last = d.get("seq") or 0
            for payload in [p for p in self.backlog if p["s"] > last]:
                await gw.ws.send_str(json.dumps(payload))
            await self._send_dispatch(gw, "RESUMED", {})
            gw.identified.set()
            self._touch()
        elif op in (3, 4, 8):
            pass  # presence / voice / member requests: accepted and ignored
        else:
            self.errors.append(f"unexpected gateway op {op}")

    async def _send_dispatch(self, gw: Gateway | None, event: str, data: dict) -> None:
        self.seq += 1
        payload = {"op": 0, "t": event, "s": self.seq, "d": data}
        self.backlog.append(payload)
        del self.backlog[:-500]
        if gw is not None and not gw.ws.closed:
            await gw.ws.send_str(json.dumps(payload))

    async def dispatch(self, event: str, data: dict) -> None:
        """Send an event to the live connection; while none is live it waits in the backlog for RESUME."""
        live = next((g for g in self.gateways if g.identified.is_set() and not g.ws.closed), None)
        await self._send_dispatch(live, event, data)

    async def wait_connected(self, timeout: float = 20.0) -> None:
        await self.wait_until(lambda: any(g.identified.is_set() and not g.ws.closed for g in self.gateways), timeout)

    # ---- faults -----------------------------------------------------------------------------
    async def drop_gateway(self, code: int = 4000) -> None:
        """Close the live connection with a resumable error code, as Discord does on a blip."""
        for gw in list(self.gateways):
            await gw.ws.close(code=code, message=b"fake drop")

    async def cut_gateway(self) -> None:
        """Drop the TCP connection without a close frame, as a network failure does."""
        for gw in list(self.gateways):
            if gw.request.transport is not None:
                gw.request.transport.abort()
            gw.identified.clear()

    async def request_reconnect(self) -> None:
        for gw in list(self.gateways):
            await gw.ws.send_str(json.dumps({"op": 7, "d": None, "s": None, "t": None}))

    async def invalidate_session(self, resumable: bool = False) -> None:
        self.session_valid = resumable
        for gw in list(self.gateways):
            await gw.ws.send_str(json.dumps({"op": 9, "d": resumable, "s": None, "t": None}))

    # ---- acting as users --------------------------------------------------------------------
    def dm_channel(self, user: dict) -> str:
        for cid, ch in self.dm_channels.items():
            if ch["recipients"][0]["id"] == user["id"]:
                return cid
        cid = self.snowflake()
        self.dm_channels[cid] = {"id": cid, "type": 1, "recipients": [user], "last_message_id": None, "flags": 0}
        return cid

    async def say(self, user: dict, content: str, *, channel_id: str | None = None, mention_bot: bool = False,
                  roles: list[str] = (), dm: bool = False, reference: str | None = None) -> dict:
        """A user posts a message; ``mention_bot`` prefixes the bot mention and fills ``mentions``."""
        cid = self.dm_channel(user) if dm else (channel_id or self.channel_id)
        if mention_bot:
            content = f"<@{self.bot_user['id']}> {content}"
        msg = self.message(channel_id=cid, author=user, content=content, reference=reference,
                           mentions=[self.bot_user] if mention_bot else [], guild=not dm)
        if not dm:
            m = self.member(user, roles)
            m.pop("user")
            msg["member"] = m
        self.messages.setdefault(cid, []).append(msg)
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    def _base_interaction(self, itype: int, user: dict, *, channel_id: str | None, dm: bool, roles, permissions) -> dict:
        iid = self.snowflake()
        payload: dict = {"id": iid, "application_id": self.app_id, "type": itype, "token": f"tok-{iid}",
                         "version": 1, "locale": "en-US", "entitlements": [], "attachment_size_limit": 26214400,
                         "authorizing_integration_owners": {"0": self.guild_of(channel_id)} if not dm else {"1": user["id"]}}
        if dm:
            cid = self.dm_channel(user)
            payload.update(channel_id=cid, channel=self.dm_channels[cid], user=user, context=1,
                           app_permissions=str(MEMBER_PERMS))
        else:
            cid = channel_id or self.channel_id
            gid = self.guild_of(cid)
            payload.update(guild_id=gid, channel_id=cid, channel=self.channel(cid), context=0,
                           guild_locale="en-US", member=self.member(user, roles, permissions),
                           app_permissions=str(MEMBER_PERMS), guild={"id": gid, "locale": "en-US", "features": []})
        return payload

    async def _send_interaction(self, payload: dict) -> FakeInteraction:
        inter = FakeInteraction(id=payload["id"], token=payload["token"], sent_at=time.monotonic(), payload=payload)
        self.interactions[inter.id] = inter
        await self.dispatch("INTERACTION_CREATE", payload)
        return inter

    def command_id(self, name: str) -> str:
        for cmds in self.commands.values():
            for cmd in cmds:
                if cmd["name"] == name:
                    return cmd["id"]
        raise AssertionError(f"command /{name} was never synced; synced: {self.commands}")

    async def slash(self, user: dict, name: str, options: dict | None = None, *, channel_id: str | None = None,
                    dm: bool = False, roles: list[str] = (), permissions: int = MEMBER_PERMS,
                    files: dict[str, bytes] | None = None) -> FakeInteraction:
        """A user runs ``/name`` with string/bool options and optional attachment options."""
        payload = self._base_interaction(2, user, channel_id=channel_id, dm=dm, roles=roles, permissions=permissions)
        opts = []
        for key, value in (options or {}).items():
            opts.append({"name": key, "type": 5 if isinstance(value, bool) else 3, "value": value})
        resolved: dict = {}
        for key, (filename, data) in (files or {}).items():
            aid = self.snowflake()
            self.attachments[aid] = data
            url = f"https://cdn.discordapp.com/attachments/{payload['channel_id']}/{aid}/{quote(filename, safe='')}"
            resolved.setdefault("attachments", {})[aid] = {
                "id": aid, "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                "content_type": "text/plain"}
            opts.append({"name": key, "type": 11, "value": aid})
        payload["data"] = {"id": self.command_id(name), "name": name, "type": 1, "options": opts}
        if not dm:
            gid = payload["guild_id"]
            payload["data"]["guild_id"] = gid if self.commands.get(gid) else None
            if payload["data"]["guild_id"] is None:
                del payload["data"]["guild_id"]
        if resolved:
            payload["data"]["resolved"] = resolved
        return await self._send_interaction(payload)

    async def click(self, user: dict, message: dict, custom_id: str, *, roles: list[str] = (), dm: bool = False) -> FakeInteraction:
        """A user presses a button on a message the bot sent."""
        payload = self._base_interaction(3, user, channel_id=message["channel_id"], dm=dm, roles=roles,
                                         permissions=MEMBER_PERMS)
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        payload["message"] = message
        return await self._send_interaction(payload)


def custom_ids(message: dict) -> list[str]:
    """The custom ids of every button on a message payload."""
    out = []
    for row in message.get("components", []):
        for comp in row.get("components", []):
            if "custom_id" in comp:
                out.append(comp["custom_id"])
    return out


def embed_text(body: dict) -> str:
    """All visible text of a message body (content and embeds), for assertions."""
    parts = [body.get("content") or ""]
    for e in body.get("embeds") or []:
        parts += [e.get("title", ""), e.get("description", ""), (e.get("footer") or {}).get("text", "")]
        for f in e.get("fields", []):
            parts += [f.get("name", ""), f.get("value", "")]
    return "\n".join(p for p in parts if p)

