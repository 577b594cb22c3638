"""Typed errors of the core. The CLI turns them into located messages and exit codes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime


@dataclass(frozen=True)
class Problem:
    """One located finding about a user's file: an error or a lint warning."""

    message: str
    file: str = ""
    line: int | None = None
    column: int | None = None
    path: str = ""
    hint: str = ""
    severity: str = "error"
    code: str = ""

    @property
    def location(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class SiyuError(Exception):
    """Base of every error caused by input, environment or state, never by a bug."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(SiyuError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2


class PlaybookInvalid(SiyuError):
    """A playbook failed validation; carries every problem, not only the first."""

    def __init__(self, problems: list[Problem], file: str = "") -> None:
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"{file or 'playbook'}: {len(errors)} error(s)")
        self.problems = problems
        self.file = file


class PlaybookNotFound(SiyuError):
    """No playbook was named and none could be found."""


class TemplateFailure(SiyuError):
    """A template did not compile or render; names the template, its line and the beat."""

    def __init__(self, message: str, *, template: str, line: int | None = None, beat: str = "") -> None:
        where = template + (f":{line}" if line else "")
        prefix = f"beat {beat}: " if beat else ""
        super().__init__(f"{where}: {prefix}{message}")
        self.template = template
        self.line = line
        self.beat = beat
        self.detail = message


class StoreError(SiyuError):
    """The SQLite store cannot be opened, is locked, or is not a siyu store."""


class ImportRejected(SiyuError):
    """An import found bad rows; nothing was imported. `rows` holds (row number, reason)."""

    def __init__(self, file: str, rows: list[tuple[int, str]], *, total_bad: int | None = None) -> None:
        count = total_bad if total_bad is not None else len(rows)
        super().__init__(
            f"{file}: {count} bad row(s); nothing was imported",
            hint="fix the rows, map columns with --map, or import the rest with --skip-bad FILE",
        )
        self.file = file
        self.rows = rows
        self.total_bad = count


class DeliveryError(SiyuError):
    """An output could not deliver a draft.

    `transient`: worth trying again later (nothing arrived: the server refused or was not reached).
    `maybe_delivered`: the request may have reached the server (a timeout or a reset after it was
    sent): never resent on its own, the draft is `unknown` until a person looks.
    `parts_done`: of a message sent in parts, how many arrived before this one failed.
    `retry_after`: when known (a full rate window), how long until a try can succeed.
    `held`: nothing was tried: the destination's shared rate limit is reached (not a failure of the output).
    `defer_to`: nothing was tried, and that is no failure: the draft is due again then (a welcome that can only go
    as a staff task waits out quiet hours).
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        maybe_delivered: bool = False,
        parts_done: int = 0,
        retry_after: float | None = None,
        hint: str = "",
        held: bool = False,
        blocked: bool = False,
        defer_to: datetime | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.held = held
        self.defer_to = defer_to
        # The output cannot work until a person fixes its setup (a wrong secret, an untrusted IP): nothing more
        # is tried on it this pass, and its drafts wait for a pass after the fix.
        self.blocked = blocked
        self.transient = transient and not maybe_delivered
        self.maybe_delivered = maybe_delivered
        self.parts_done = parts_done
        self.retry_after = retry_after  # seconds until trying again is worth it, when the output knows


class LockHeld(SiyuError):
    """Another live process holds what this command needs."""


class ClaimLost(SiyuError):
    """A run's claim on a draft was taken over (its lease expired); it must not send that draft or settle it."""

    def __init__(self, draft_id: str) -> None:
        super().__init__(f"{draft_id}: claim lost to another run", hint="its lease expired while this run was hung or paused")
        self.draft_id = draft_id


class WecomError(DeliveryError):
    """WeCom's server API refused a call, or could not be asked. `api` is the call (e.g.
    externalcontact/add_msg_template); `errcode`/`errmsg` are WeCom's answer when it gave one (None before
    anything was sent). `transient`: the same call may succeed later; `maybe_sent`: a creating call was written
    but its answer never came, so WeCom may hold the task: record it `unknown`, never resend blindly."""

    def __init__(
        self,
        message: str,
        *,
        api: str,
        errcode: int | None = None,
        errmsg: str = "",
        hint: str = "",
        transient: bool = False,
        maybe_sent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, transient=transient, maybe_delivered=maybe_sent, retry_after=retry_after, hint=hint)
        self.api = api
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def maybe_sent(self) -> bool:
        return self.maybe_delivered


class WecomTransient(WecomError):
    """WeCom was busy, rate-limited or out of reach and nothing was created: try again later (`retry_after`)."""

    def __init__(self, message: str, *, api: str, errcode: int | None = None, errmsg: str = "", hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, api=api, errcode=errcode, errmsg=errmsg, hint=hint, transient=True, retry_after=retry_after)


class WecomMaybeSent(WecomError):
    """A creating call (a mass-send task, a Moments task, a welcome) went out and no answer came back."""

    def __init__(self, message: str, *, api: str, hint: str = "") -> None:
        super().__init__(message, api=api, hint=hint, maybe_sent=True)


class WecomSetupError(WecomError):
    """What every call would meet alike until a person fixes the setup (SIYU_WECOM_API not WeCom's base URL):
    the output stops for the pass and its drafts wait, as for a wrong secret."""


class CallbackRejected(SiyuError):
    """A WeCom callback siyu serve does not take (nothing is recorded): `status` is the HTTP answer it gets."""

    status = 400


class BadSignature(CallbackRejected):
    """The callback's msg_signature is not the SHA-1 of our Token with its timestamp, nonce and ciphertext."""

    status = 403


class WrongCorp(CallbackRejected):
    """The callback decrypted, but for another corp: its receiveid is not our corp id."""

    status = 403


class MalformedCallback(CallbackRejected):
    """The callback is not WeCom's form: no XML, no Encrypt, not Base64, bad padding or length."""


class BadAesKey(SiyuError):
    """The EncodingAESKey is not 43 characters of Base64 that decode to a 32-byte AES key."""
