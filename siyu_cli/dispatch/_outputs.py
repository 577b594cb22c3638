"""What a due draft looks like when it leaves siyu, and the outputs that take it.

The runner turns each due draft into an `Outgoing` and hands it to every output
the playbook's `outputs:` list names. Outputs differ in one way the ledger cares
about: an idempotent output (the outbox) can be asked after a crash whether a
draft already arrived; a non-idempotent one (a webhook) cannot, so an in-flight
delivery to it becomes `unknown` rather than being sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from siyu_cli.dispatch._console import ConsoleOutput
from siyu_cli.dispatch._outbox import OutboxOutput
from siyu_cli.dispatch._webhook import DEFAULT_ATTEMPTS, FORMATS, RateLimiter, WebhookOutput, parse_timeout, platform
from siyu_cli.errors import SiyuError
from siyu_cli.render._media import Media

CHANNEL_LABELS = {
    "group": "群 group",
    "moments": "朋友圈 Moments",
    "private": "私聊 1v1",
    "live": "直播 live",
    "welcome": "欢迎语 welcome",
}


@dataclass(frozen=True)
class Recipient:
    """One draft of a send task: who it reaches."""

    draft_id: str
    target_id: str  # contact:<id> | group:<id> | persona:<id>
    label: str

    @property
    def ident(self) -> str:
        return self.target_id.partition(":")[2]


@dataclass(frozen=True)
class Delivered:
    """What an output reports of a task that reached it: where, and the recipients the platform refused at once."""

    location: str
    refused: Mapping[str, str] = field(default_factory=dict)  # draft id → outcome (not_friend)
    # Recipients of parts made before this call (by a run that died, or a try that failed after them): sent, not now.
    earlier: int = 0


@dataclass(frozen=True)
class Outgoing:
    """One send task on its way to one or more outputs: drafts sharing an account, beat, time, variant and text.

    A task of one draft keeps that draft's id (`draft_id`) and target; a task of several is named by its
    first recipient's draft id and the count (`<id>-<n>`), and its target says how many it reaches.
    """

    draft_id: str
    playbook_id: str
    playbook_title: str
    cohort: str
    beat: str
    beat_title: str
    channel: str
    persona: str
    account: str | None
    target: str
    target_id: str
    due_at: datetime
    day: int
    category: str | None
    variant: str | None
    text: str
    attachments: tuple[Media, ...] = ()
    recipients: tuple[Recipient, ...] = ()
    persona_id: str = ""

    @property
    def draft_ids(self) -> list[str]:
        return [r.draft_id for r in self.recipients] or [self.draft_id]

    @property
    def channel_label(self) -> str:
        return CHANNEL_LABELS.get(self.channel, self.channel)

    @property
    def speaker(self) -> str:
        """Persona with its account, the way the front line recognises who sends."""
        return f"{self.persona} ({self.account})" if self.account else self.persona

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the due time as ISO 8601 with its offset."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["due_at"] = self.due_at.isoformat()
        data["attachments"] = [{k: v for k, v in m.__dict__.items() if v is not None} for m in self.attachments]
        data["recipients"] = [{"draft_id": r.draft_id, "target_id": r.target_id, "target": r.label} for r in self.recipients]
        return data


@runtime_checkable
class Output(Protocol):
    """Where drafts go. `deliver` raises DeliveryError; it never prints."""

    name: str
    idempotent: bool
    # Reads back from its platform what was really sent (`sync`), so a first welcome it sends cannot wait for quiet hours.
    reads_back: bool

    def deliver(self, msg: Outgoing, *, first_part: int = 1, on_part: Callable[[int], None] | None = None) -> str | Delivered: ...

    def delivered_location(self, msg: Outgoing) -> str | None: ...

    def flush(self) -> None:
        """Make every delivery so far durable; called before the ledger records a batch."""


def build_outputs(
    specs: list[Any],
    *,
    outbox_dir: Path,
    environ: Mapping[str, str],
    console: Callable[[Outgoing], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int | None = None,
    playbook: Any = None,
    db: Any = None,
) -> list[Output]:
    """Outputs for a playbook's `outputs:` entries; fails before anything is sent.

    Names are stable so the ledger keeps recognising an output when others are
    added: the first of a kind is `outbox`, `console` or `webhook:<format>`, later
    ones of the same kind get `:2`, `:3`. Webhooks posting to the same URL share
    one rate limiter, so two outputs cannot together exceed the platform's limit.
    `attempts`: tries per webhook request within one call (the runner asks for one: later
    passes retry on a backoff kept in the ledger, so a robot that is down stalls nothing).
    """
    outputs: list[Output] = []
    taken: set[str] = set()
    limiters: dict[tuple[str, str], RateLimiter] = {}

    def unique(base: str, explicit: bool) -> str:
        if explicit:
            if base in taken:
                raise SiyuError(
                    f"two outputs are both named {base!r}",
                    hint="give each output its own name: so the ledger can tell them apart",
                )
            return base
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}:{n}"
        return name

    for index, raw in enumerate(specs or ["outbox"], start=1):
        spec = _as_dict(raw, index)
        kind = spec.get("type")
        explicit = spec.get("name")
        if explicit is not None and (not isinstance(explicit, str) or not explicit.strip()):
            raise SiyuError(f"outputs[{index}]: name must be a non-empty text")
        output: Output
        if kind == "outbox":
            folder = Path(spec["dir"]) if spec.get("dir") else Path(outbox_dir)
            output = OutboxOutput(folder, name=unique(explicit or "outbox", bool(explicit)))
        elif kind == "console":
            output = ConsoleOutput(console, name=unique(explicit or "console", bool(explicit)))
        elif kind == "webhook":
            output = _webhook(spec, index, environ, clock, sleep, limiters, unique, attempts)
        elif kind == "wecom":
            if playbook is None or db is None:
                raise SiyuError(f"outputs[{index}]: the wecom output needs the playbook and its store", hint="run it with `siyu run`")
            from siyu_cli.wecom._output import WecomOutput

            output = WecomOutput(spec, name=unique(explicit or "wecom", bool(explicit)), playbook=playbook, db=db, environ=environ, sleep=sleep)
            twin = next((o for o in outputs if isinstance(o, WecomOutput) and o.corp_id == output.corp_id), None)
            if twin is not None:
                # check refuses two outputs reading one variable; two variables holding one corp id are only seen here.
                raise SiyuError(
                    f"outputs {twin.name} and {output.name} are both corp {output.corp_id}: their variables {twin.spec.get('corp_id_env') or 'SIYU_WECOM_CORP_ID'} "
                    f"and {spec.get('corp_id_env') or 'SIYU_WECOM_CORP_ID'} hold the same value, and every output receives every due draft, so each task would be created twice in WeCom",
                    hint="keep one wecom output per corp; a second corp runs from its own playbook and store",
                )
        else:
            raise SiyuError(
                f"outputs[{index}]: unknown output type {kind!r}",
                hint="use outbox, console, {type: webhook, format: wecom|feishu|dingtalk|json, url_env: NAME} or {type: wecom}",
            )
        taken.add(output.name)
        outputs.append(output)
    return outputs


def _as_dict(raw: Any, index: int) -> dict[str, Any]:
    if isinstance(raw, str):
        return {"type": raw.strip()}
    if hasattr(raw, "model_dump"):
        return {k: v for k, v in raw.model_dump().items() if v is not None}
    if isinstance(raw, Mapping):
        return dict(raw)
    raise SiyuError(f"outputs[{index}]: expected a name such as outbox, or a mapping, not {type(raw).__name__}")


def _webhook(
    spec: dict[str, Any],
    index: int,
    environ: Mapping[str, str],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    limiters: dict[tuple[str, str], RateLimiter],
    unique: Callable[[str, bool], str],
    attempts: int | None,
) -> WebhookOutput:
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise SiyuError(
            f"outputs[{index}]: unknown webhook format {fmt!r}",
            hint="use one of: " + ", ".join(FORMATS),
        )
    info = platform(fmt)
    url_env = spec.get("url_env")
    if not url_env or not isinstance(url_env, str):
        raise SiyuError(
            f"outputs[{index}]: the {info.label} webhook needs url_env, the environment variable holding its URL",
            hint=f"add url_env: SIYU_{fmt.upper()}_WEBHOOK and export SIYU_{fmt.upper()}_WEBHOOK='{info.example_url}'",
        )
    url = environ.get(url_env, "").strip()
    if not url:
        raise SiyuError(
            f"environment variable {url_env} is not set; the {info.label} webhook takes its URL from it",
            hint=f"export {url_env}='{info.example_url}' (secrets live in the environment, never in the playbook)",
        )
    secret: str | None = None
    secret_env = spec.get("secret_env")
    if secret_env:
        if fmt not in ("feishu", "dingtalk"):
            raise SiyuError(
                f"outputs[{index}]: secret_env is only used by feishu and dingtalk webhooks, not {fmt}",
                hint="remove secret_env, or keep the key inside the URL for wecom and json",
            )
        secret = environ.get(secret_env, "").strip()
        if not secret:
            raise SiyuError(
                f"environment variable {secret_env} is not set; the {info.label} webhook signs its messages with it",
                hint=f"export {secret_env}='SEC...' (the signing secret from the robot's security settings)",
            )
    try:
        timeout = parse_timeout(spec.get("timeout"))
    except ValueError as exc:
        raise SiyuError(f"outputs[{index}]: timeout: {exc}") from None
    explicit = spec.get("name")
    name = unique(explicit or f"webhook:{fmt}", bool(explicit))
    output = WebhookOutput(
        name=name, format=fmt, url=url, secret=secret, timeout=timeout, clock=clock, sleep=sleep, url_env=url_env,
        attempts=attempts if attempts is not None else DEFAULT_ATTEMPTS,
    )
    key = (fmt, output.url)
    if key not in limiters:
        limiters[key] = output.limiter
    output.limiter = limiters[key]
    return output
