"""The two WebSocket ends of a terminal: the workspace agent's link and a client's terminal.

The agent's link is one per running workspace, dialled out from inside the workspace; the client's terminal is a
browser or the CLI. They meet through the channel layer: the agent
link joins the group `gp_agent_<workspace>`, each terminal sends its frames there and gets output on its own
channel. Neither end trusts the other: the agent is inside a workspace a developer controls; the client is
checked on every connect (owner only) and every frame is validated (catalog.terminals.protocol)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from ..models import AgentState, Workspace, WorkspaceStatus
from ..selectors import visible_workspaces
from . import protocol as p
from . import services
from .auth import header
from .recording import Recorder
from .selectors import can_open_terminal

OPEN_TIMEOUT_S = 10.0


def agent_group(workspace_id: Any) -> str:
    return f"gp_agent_{uuid.UUID(str(workspace_id)).hex}"


@database_sync_to_async
def _owned_workspace(user: Any, pk: Any) -> tuple[Workspace | None, bool]:
    """(workspace, may open its terminal) as the selectors decide (the page asks the same question)."""
    ws = visible_workspaces(user).filter(pk=pk).first()
    return ws, bool(ws and can_open_terminal(user, ws))


class TerminalConsumer(AsyncWebsocketConsumer):
    """A client's terminal: open a PTY through the agent, relay keystrokes and output, audit open and close."""

    session_id: uuid.UUID | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # handshake refused: 403
            return
        ws, owner = await _owned_workspace(user, self.scope["url_route"]["kwargs"]["pk"])
        if ws is None or not owner:
            await self.close()
            return
        self.workspace = ws
        self.bytes_in = self.bytes_out = 0
        self.recorder: Recorder | None = None
        self.closed = False
        self.opened = asyncio.Event()
        self.last_activity = 0.0
        await self.accept()
        if ws.status != WorkspaceStatus.RUNNING:
            await self.close(code=p.CLOSE_NOT_RUNNING)
            return
        if ws.agent_state != AgentState.READY:
            await self.close(code=p.CLOSE_AGENT_NOT_READY)
            return
        cols, rows = 80, 24
        session = await database_sync_to_async(services.terminal_session_open)(
            workspace=ws, user=user, client=self.scope.get("goldpath_client", "browser"), cols=cols, rows=rows
        )
        self.session_id = session.pk
        if session.recorded:
            self.recorder = Recorder(cols, rows)
        await self._to_agent(p.agent_frame("open", session.pk, cols=cols, rows=rows, reply=self.channel_name))
        # the agent's `opened` is dispatched only after connect() returns: wait for it in a task of its own
        self._open_watch = asyncio.ensure_future(self._expect_opened())

    async def _expect_opened(self) -> None:
        try:
            await asyncio.wait_for(self.opened.wait(), OPEN_TIMEOUT_S)
        except TimeoutError:
            await self._end(p.CLOSE_AGENT_NOT_READY)

    async def _to_agent(self, frame: str) -> None:
        await self.channel_layer.group_send(agent_group(self.workspace.pk), {"type": "agent.forward", "frame": frame})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session_id is None or self.closed:
            return
        try:
            kind, value = p.parse_client_frame(text_data if text_data is not None else "")
        except p.BadMessage:
            await self._end(p.CLOSE_BAD_MESSAGE)
            return
        if kind == "data":
            self.bytes_in += len(value.encode())
            await self._to_agent(p.agent_frame("input", self.session_id, data=value))
            now = time.monotonic()
            if now - self.last_activity > services.ACTIVITY_WRITE_EVERY.total_seconds():
                self.last_activity = now
                await database_sync_to_async(services.activity_seen)(workspace_id=self.workspace.pk)
        else:
            cols, rows = value
            if self.recorder:
                self.recorder.resize(cols, rows)
            await self._to_agent(p.agent_frame("resize", self.session_id, cols=cols, rows=rows))

    # messages from the agent link (channel layer)
    async def terminal_opened(self, event: dict) -> None:
        self.opened.set()

    async def terminal_output(self, event: dict) -> None:
        if self.closed:
            return
        data = event["data"]
        self.bytes_out += len(data)
        if self.recorder:
            self.recorder.output(data)
        await self.send(bytes_data=data)

    async def terminal_exit(self, event: dict) -> None:
        await self._end(int(event.get("code", p.CLOSE_NORMAL)))

    async def _end(self, code: int) -> None:
        if not getattr(self, "closed", True):
            self.closed = True
            await self.close(code=code)
            await self._finish(p.CLOSE_REASONS.get(code, f"closed ({code})"))

    async def disconnect(self, code: int) -> None:
        if self.session_id is None:
            return
        if not self.closed:
            self.closed = True
            await self._to_agent(p.agent_frame("close", self.session_id))
        await self._finish("the client closed the terminal" if code in (1000, 1001) else f"disconnected ({code})")

    async def _finish(self, reason: str) -> None:
        if getattr(self, "_finished", False) or self.session_id is None:
            return
        self._finished = True
        rec = self.recorder
        await database_sync_to_async(services.terminal_session_close)(
            session_id=self.session_id,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            reason=reason,
            recording=rec.text() if rec else "",
            truncated=bool(rec and rec.truncated),
        )


class AgentLinkConsumer(AsyncWebsocketConsumer):
    """The workspace agent's connection, authenticated by the workspace's current agent token (Bearer)."""

    token = ""
    workspace_id: Any = None

    async def connect(self) -> None:
        auth = header(self.scope, b"authorization")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        pk = self.scope["url_route"]["kwargs"]["pk"]
        ws = await database_sync_to_async(services.agent_authenticate)(workspace_id=pk, token=token)
        if ws is None:
            await self.close()
            return
        self.token, self.workspace_id = token, ws.pk
        self.sessions: dict[str, str] = {}  # session hex -> the terminal's channel
        self.replaced = False
        await self.channel_layer.group_send(agent_group(ws.pk), {"type": "agent.replaced", "by": self.channel_name})
        await self.channel_layer.group_add(agent_group(ws.pk), self.channel_name)
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            try:
                session, data = p.split_output(bytes_data)
            except p.BadMessage:
                return
            channel = self.sessions.get(session)
            if channel and data:
                await self.channel_layer.send(channel, {"type": "terminal.output", "data": data})
            return
        msg = _json(text_data)
        op, session = msg.get("op"), msg.get("session")
        if op == "hello":
            token = await database_sync_to_async(services.agent_link_established)(
                workspace_id=self.workspace_id, token=self.token
            )
            if token is None:  # a newer start took over meanwhile
                await self.close(code=p.CLOSE_FORBIDDEN)
                return
            self.token = token
            await self.send(text_data=json.dumps({"op": "token", "token": token}))
        elif op == "opened" and session in self.sessions:
            await self.channel_layer.send(self.sessions[session], {"type": "terminal.opened"})
        elif op == "exit" and session in self.sessions:
            channel = self.sessions.pop(session)
            await self.channel_layer.send(channel, {"type": "terminal.exit", "code": p.CLOSE_NORMAL})

    async def agent_forward(self, event: dict) -> None:
        """A terminal's frame for the agent; an `open` names the terminal's channel, which stays here."""
        frame = event["frame"]
        msg = _json(frame)
        if msg.get("op") == "open" and isinstance(msg.get("reply"), str):
            self.sessions[msg["session"]] = msg.pop("reply")
            frame = p.agent_frame("open", uuid.UUID(msg["session"]), cols=msg["cols"], rows=msg["rows"])
        elif msg.get("op") == "close":
            self.sessions.pop(msg.get("session"), None)
        await self.send(text_data=frame)

    async def agent_replaced(self, event: dict) -> None:
        """A newer link of the same workspace took over (a reconnect that raced the old socket's close)."""
        if event["by"] != self.channel_name:
            self.replaced = True
            await self.close(code=p.CLOSE_AGENT_GONE)

    async def disconnect(self, code: int) -> None:
        if self.workspace_id is None:
            return
        await self.channel_layer.group_discard(agent_group(self.workspace_id), self.channel_name)
        for channel in self.sessions.values():
            await self.channel_layer.send(channel, {"type": "terminal.exit", "code": p.CLOSE_AGENT_GONE})
        self.sessions.clear()
        if not self.replaced:
            await database_sync_to_async(services.agent_state_set)(
                workspace_id=self.workspace_id, state=AgentState.DISCONNECTED, token=self.token
            )


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}

