"""The playbook format, version 1, as pydantic models: the contract of playbook-spec.md."""

from __future__ import annotations

import re
import typing
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema, field_validator, model_validator

from siyu_cli._time import parse_duration, parse_hhmm
from siyu_cli.playbook import _days, _tags
from siyu_cli.playbook._calendar import WORDS

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Slug = Annotated[str, Field(pattern=SLUG, description="an id: letters, digits, '-', '_' or '.'")]
# The name run reads a secret from: an empty one would fall back to the default silently, "my secret" cannot be exported.
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, Field(pattern=ENV_NAME)]
# WeCom's 成员UserID (创建成员, user/create): 1-64 bytes of digits, letters and _-@., starting with a digit or letter.
USERID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
# What a value that does not match each pattern must be (the loader's message for string_pattern_mismatch).
PATTERNS = {
    SLUG: "must be an id: letters, digits, '-', '_' or '.', starting with a letter or digit",
    ENV_NAME: "must be an environment variable name: letters, digits and '_', not starting with a digit",
    USERID: "must be a WeCom userid (成员UserID): up to 64 letters, digits, '_', '-', '@' or '.', starting with a letter or digit",
}
# Day numbers start at 1, as check reads them: "0-3" is refused by both.
_RANGE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"^\s*0*[1-9]\d*\s*(-\s*(0*[1-9]\d*)?\s*)?$"}
_NUMBERS_SCHEMA: list[dict[str, Any]] = [
    {"type": "integer", "minimum": 1},
    {"type": "string", "enum": ["all"]},
    _RANGE_SCHEMA,
    {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "integer", "minimum": 1}, _RANGE_SCHEMA]}},
]
_PHASE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"phase": {"type": "string", "description": "the days of this phase (an id under phases:)", "examples": ["conversion"]}},
    "required": ["phase"],
    "additionalProperties": False,
}
_WORD_SCHEMA: dict[str, Any] = {"type": "string", "enum": list(WORDS)}
DaySpec = Annotated[
    str | int | list[int | str] | dict[str, str],
    WithJsonSchema({"anyOf": [*_NUMBERS_SCHEMA, _PHASE_SCHEMA]}),
    Field(description='days: "3", "2-5", "8-", [1, 3, 5], all, or {phase: ID}'),
]
BeatDays = Annotated[
    str | int | list[int | str] | dict[str, Any],
    WithJsonSchema(
        {
            "anyOf": [
                *_NUMBERS_SCHEMA,
                _PHASE_SCHEMA,
                _WORD_SCHEMA,
                {
                    "type": "object",
                    "properties": {
                        "in": {"anyOf": _NUMBERS_SCHEMA, "description": "the campaign days to start from (default all)"},
                        "phase": {"type": "string", "description": "or a phase's days"},
                        "only": {**_WORD_SCHEMA, "description": "keep only these days of China's calendar"},
                        "not": {**_WORD_SCHEMA, "description": "leave these days out (not: holidays)"},
                    },
                    "anyOf": [{"required": ["only"]}, {"required": ["not"]}],
                    "not": {"required": ["in", "phase"]},
                    "additionalProperties": False,
                },
            ]
        }
    ),
    Field(
        description='days: "3", "2-5", "8-", [1, 3, 5], all, {phase: ID}; on China\'s calendar (调休 included): workdays, weekends, holidays, '
        'or {in: RANGE | phase: ID, only: WORD, not: WORD}, e.g. {in: "8-", not: holidays}'
    ),
]
EventType = Literal[
    "card_sent",
    "friend_added",
    "friend_deleted",
    "group_joined",
    "group_left",
    "checkin",
    "message_replied",
    "order",
    "refund",
]
EVENTS: tuple[str, ...] = typing.get_args(EventType)
Tier = Literal["relationship", "experience", "profit", "traffic", "lock_in"]
Channel = Literal["group", "moments", "private", "live"]
_QUIET = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


def _days_ok(value: Any, *, calendar: bool = False) -> Any:
    try:
        _days.check_syntax(value, calendar=calendar)
    except _days.DaySpecError as exc:
        raise ValueError(str(exc)) from None
    return value


def _duration_ok(value: Any) -> str:
    try:
        parse_duration(str(value))
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return str(value)


def _expr_ok(value: str) -> str:
    try:
        _tags.parse(value)
    except _tags.TagExprError as exc:
        raise ValueError(f"tag expression does not parse: {exc}") from None
    return value


def _segment_id(value: str) -> str:
    if not re.match(SLUG, value):
        raise ValueError(f"segment id {value!r} must be a slug (letters, digits, '-', '_')")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Content(_Strict):
    """Either a template file or inline Jinja text."""

    template: str | None = Field(None, description="template file, looked up beside the playbook, in templates/, then built-ins")
    text: str | None = Field(None, description="inline Jinja text instead of a template file")


def _clock_ok(value: str | None) -> str | None:
    if value is not None:
        parse_hhmm(value)
    return value


def _variants_ok(item: _Content, variants: dict[str, Any]) -> None:
    """Variants instead of template/text, each its own content or a holdout, and not all holdouts."""
    if item.template or item.text is not None:
        raise ValueError("give variants instead of template/text, not both")
    for variant in variants.values():
        _one_content(variant, required=False)
    if all(v.template is None and v.text is None for v in variants.values()):
        raise ValueError("every variant is a holdout; give at least one a template or text")


def _one_content(item: _Content, *, required: bool = True) -> None:
    if item.template and item.text:
        raise ValueError("give either template or text, not both")
    if required and not item.template and item.text is None:
        raise ValueError("needs a template or a text")


FanTier = Literal["precise", "semi", "general"]


class Capacity(_Strict):
    """人效: fans one operator handles in 1v1 a day, by fan tier (the seeds: about 20 precise or 40 general)."""

    precise: int = Field(20, ge=1, examples=[20], description="精准粉 one operator handles in 1v1 a day")
    semi: int = Field(30, ge=1, examples=[30], description="半精准粉 a day (between the seeds' 20 precise and 40 general)")
    general: int = Field(40, ge=1, examples=[40], description="泛粉 a day")
    untiered: FanTier = Field("precise", examples=["precise"], description="the tier a contact without one counts as (default the most work: never overstates capacity)")
    operators: int = Field(1, ge=1, examples=[2], description="people working this account")


class Persona(_Strict):
    id: Slug
    name: str
    role: str | None = None
    voice: str | None = None
    account: str | None = Field(None, description="the WeChat/WeCom account this persona speaks from")
    capacity: Capacity | None = Field(None, examples=[{"precise": 20, "general": 40}], description="人效: caps the 1v1 drafts that need a person; over it they carry over to the next day")
    account_since: date | None = Field(None, examples=["2026-11-01"], description="the day the account was registered (养号 stage by its age)")
    wecom_userid: Annotated[str, Field(pattern=USERID)] | None = Field(None, examples=["aqi"], description="the staff member's WeCom userid (成员账号): the `wecom` output hands this persona's tasks to them")


class Product(_Strict):
    id: Slug
    name: str
    price: float = Field(ge=0, allow_inf_nan=False)
    tier: Tier


class Phase(_Strict):
    id: Slug
    title: str
    days: DaySpec

    _days = field_validator("days")(classmethod(lambda cls, v: _days_ok(v)))


class Group(_Strict):
    id: Slug
    name: str
    persona: str | None = None
    chat_id: str | None = Field(None, min_length=1, examples=["wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAA"], description="the customer group's WeCom chat_id (客户群ID): the `wecom` output sends this group's beats to it")


class MixEntry(_Strict):
    days: DaySpec
    ratio: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]]

    _days = field_validator("days")(classmethod(lambda cls, v: _days_ok(v)))

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("a ratio needs at least one category")
        return value


# What WeCom and Moments take with a message (domain.md, "WeCom's own rules"): at most 9 images, or 1 video, or 1 link.
MAX_IMAGES = 9
IMAGE_TYPES = (".jpg", ".jpeg", ".png")
VIDEO_TYPES = (".mp4",)
_URL = re.compile(r"^https?://[^\s/?#]+\.[^\s/?#]+[^\s]*$", re.IGNORECASE)


def is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def _url_ok(value: str, what: str) -> None:
    if not _URL.match(value.strip()):
        raise ValueError(f"{what} {value!r} is not a URL; write https://host/path")


def _media_ok(value: str, what: str, types: tuple[str, ...]) -> None:
    """A file (beside the playbook) or a URL whose name ends in one of `types`."""
    if is_url(value):
        _url_ok(value, what)
    name = value.split("?", 1)[0].lower()
    if not name.endswith(types):
        raise ValueError(f"{what} {value!r} is not {' or '.join(t.lstrip('.') for t in types)}; WeCom takes {', '.join(types)}")


class Attachment(_Strict):
    """An image, a video, a link card or a mini-program card sent with a draft's text.

    A bare string in `attachments:` is an image or a video by its extension."""

    image: str | None = Field(None, description="a .jpg/.png file beside the playbook, or its URL (WeCom: at most 2 MB)")
    video: str | None = Field(None, description="an .mp4 file beside the playbook, or its URL (WeCom: at most 10 MB)")
    link: str | None = Field(None, description="a link card's URL (https://…)")
    miniprogram: str | None = Field(None, description="a mini-program card's appid (wx…)")
    page: str | None = Field(None, description="mini-program: the page path it opens")
    title: str | None = Field(None, description="link and mini-program: the card's title")
    description: str | None = Field(None, description="link: the card's line under the title")
    cover: str | None = Field(None, description="link and mini-program: the card's picture, a .jpg/.png file or URL")

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        if isinstance(value, str):
            name = value.split("?", 1)[0].lower()
            if name.endswith(IMAGE_TYPES):
                return {"image": value}
            if name.endswith(VIDEO_TYPES):
                return {"video": value}
            raise ValueError(
                f"{value!r} is neither an image ({', '.join(IMAGE_TYPES)}) nor a video ({', '.join(VIDEO_TYPES)}); "
                "write {link: URL, title: …} for a link card, {image: …} or {video: …} otherwise"
            )
        return value

    @model_validator(mode="after")
    def _one(self) -> Attachment:
        given = [k for k in ("image", "video", "link", "miniprogram") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("an attachment is one of {image: FILE}, {video: FILE}, {link: URL, title}, {miniprogram: APPID, page, title}")
        kind = given[0]
        if self.image:
            _media_ok(self.image, "image", IMAGE_TYPES)
        if self.video:
            _media_ok(self.video, "video", VIDEO_TYPES)
        if self.link:
            _url_ok(self.link, "link")
        if self.cover:
            _media_ok(self.cover, "cover", IMAGE_TYPES)
        if kind in ("link", "miniprogram") and not (self.title or "").strip():
            raise ValueError(f"a {kind} card needs a title: the line people see")
        if kind == "miniprogram" and not self.page:
            raise ValueError("a mini-program card needs page: the page path it opens (pages/index/index)")
        extra = [k for k in ("page", "title", "description", "cover") if getattr(self, k) is not None and (kind in ("image", "video") or (k == "page" and kind == "link"))]
        if extra:
            raise ValueError(f"{', '.join(extra)} is for link or mini-program cards, not {kind}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("image", "video", "link", "miniprogram") if getattr(self, k))

    @property
    def source(self) -> str:
        """The file or URL of an image or video, the URL of a link, the appid of a mini-program."""
        return str(getattr(self, self.kind))


AttachmentItem = Annotated[
    Attachment,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "an image (.jpg/.png) or video (.mp4): a file beside the playbook or a URL"},
                {"type": "object"},
            ]
        }
    ),
]
Attachments = Annotated[
    list[AttachmentItem],
    Field(description="sent with the text: at most 9 images, or 1 video, or 1 link or mini-program card (WeCom and Moments)"),
]


_KIND_NAMES = {"image": ("image", "images"), "video": ("video", "videos"), "link": ("link card", "link cards"), "miniprogram": ("mini-program card", "mini-program cards")}


def counted(kinds: list[str]) -> str:
    """Attachment kinds as people count them: "2 videos", "1 image, 1 link card"."""
    return ", ".join(f"{kinds.count(k)} {_KIND_NAMES[k][kinds.count(k) != 1]}" for k in dict.fromkeys(kinds))


def attachments_ok(items: list[Attachment]) -> list[Attachment]:
    """WeCom's and Moments' combinations: images alone (at most 9), or one video, or one card; each error ends with its fix."""
    kinds = [item.kind for item in items]
    images = kinds.count("image")
    others = len(kinds) - images
    if images > MAX_IMAGES:
        raise ValueError(f"{images} images; WeCom and Moments take at most {MAX_IMAGES}; remove {images - MAX_IMAGES}, or put the rest in another beat")
    takes = f"a message takes up to {MAX_IMAGES} images, or 1 video, or 1 link or mini-program card"
    if len(set(kinds)) == 1 and others > 1:
        raise ValueError(f"{counted(kinds)}: {takes}; remove all but one, or give each a beat of its own")
    if others > 1 or (others and images):
        rest = [k for k in kinds if k != kinds[0]]
        named = " and ".join(f"the {_KIND_NAMES[k][0]}" if rest.count(k) == 1 else f"the {rest.count(k)} {_KIND_NAMES[k][1]}" for k in dict.fromkeys(rest))
        raise ValueError(f"{counted(kinds)}: {takes}, not several kinds; remove {named}, or put {'it' if len(rest) == 1 else 'them'} in another beat")
    return items


class PoolText(_Strict):
    """A pool entry with its own text (or template) and attachments."""

    text: str | None = None
    template: str | None = None
    attachments: Attachments = []

    _attachments = field_validator("attachments")(classmethod(lambda cls, v: attachments_ok(v)))

    @model_validator(mode="after")
    def _content(self) -> PoolText:
        _one_content(self)  # type: ignore[arg-type]
        return self


class Variant(_Content):
    weight: float = Field(gt=0, allow_inf_nan=False)


# 群健康 as the seeds class groups (domain.md, "Other figures"), `new` for a group younger than the window, and
# `unknown` for a group with no data: listable, though a filter admits an unknown group whether it is listed or not.
HealthClass = Literal["value", "chicken_rib", "dead", "spam", "new", "unknown"]
HEALTH_CLASSES: tuple[str, ...] = typing.get_args(HealthClass)


class GroupFilter(_Strict):
    """A group beat's groups by health: `groups: {health: [value, chicken_rib]}`, optionally `in: [g1, g2]`."""

    in_: list[str] | None = Field(None, alias="in", description="the groups to consider (default all)")
    health: list[HealthClass] = Field(
        min_length=1,
        description="post only to groups whose health 群健康, from the events up to the day before, is one of these: value, chicken_rib, dead, spam, new, unknown; "
        "a group with no data (unknown) gets the post whether or not unknown is listed",
    )

    @field_validator("health", mode="before")
    @classmethod
    def _health_written(cls, value: Any) -> Any:
        """`chicken-rib` (as prose spells it) says which class it means; a class listed twice is a slip, not a rule."""
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str) and item not in HEALTH_CLASSES and item.replace("-", "_").lower() in HEALTH_CLASSES:
                    raise ValueError(f"{item!r} is no health class: did you mean {item.replace('-', '_').lower()}?")
            twice = sorted({item for item in value if isinstance(item, str) and value.count(item) > 1})
            if twice:
                raise ValueError(f"{', '.join(twice)} listed twice: name each health class once")
        return value


class Beat(_Content):
    id: Slug
    title: str | None = None
    at: str | list[str]
    days: BeatDays = "all"
    channel: Channel
    persona: str | None = None
    groups: list[str] | GroupFilter | None = Field(
        None, description="group beats: the groups to post in (default all), or {in: [...], health: [value, chicken_rib]} to skip groups by health"
    )
    audience: str | None = Field(None, description="private beats: a segment id or an inline tag expression")
    mix: list[MixEntry] | None = None
    pools: dict[str, str | list[str | PoolText]] | None = None
    variants: dict[str, Variant] | None = Field(None, description="private beats: A/B variants; one without template/text is a holdout")
    attachments: Attachments = []

    _days = field_validator("days")(classmethod(lambda cls, v: _days_ok(v, calendar=True)))
    _attachments = field_validator("attachments")(classmethod(lambda cls, v: attachments_ok(v)))

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | list[str]) -> str | list[str]:
        seen: dict[Any, str] = {}
        for item in [value] if isinstance(value, str) else value:
            clock = parse_hhmm(item)
            if clock in seen:
                raise ValueError(f"{item!r} is listed twice (as {seen[clock]!r}); give each time once")
            seen[clock] = item
        if isinstance(value, list) and not value:
            raise ValueError("give at least one time")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Beat:
        if self.mix or self.pools:
            if not (self.mix and self.pools):
                raise ValueError("mix and pools go together")
            if self.template or self.text is not None or self.variants:
                raise ValueError("a beat with mix/pools takes its content from the pools, not template/text/variants")
        elif self.variants:
            if self.channel != "private":
                raise ValueError("variants are for private beats")
            _variants_ok(self, self.variants)
        else:
            _one_content(self)
        if self.channel == "private" and not self.audience:
            raise ValueError("a private beat needs an audience (a segment id or tag expression)")
        if self.channel != "private" and self.audience:
            raise ValueError("audience is for private beats; group beats use groups:")
        if self.channel != "group" and self.groups is not None:
            raise ValueError("groups: is for group beats")
        if self.channel == "moments" and any(a.kind == "miniprogram" for a in self.attachments):
            raise ValueError("Moments take images, a video or a link, not a mini-program card; send it in a group or 1v1 beat")
        return self

    @property
    def times(self) -> list[str]:
        return [self.at] if isinstance(self.at, str) else list(self.at)

    @property
    def group_ids(self) -> list[str] | None:
        """The groups named (None: all), whichever form `groups:` takes."""
        return self.groups.in_ if isinstance(self.groups, GroupFilter) else self.groups

    @property
    def health(self) -> frozenset[str] | None:
        """The health classes a group must have to get this beat's post (None: every group)."""
        return frozenset(self.groups.health) if isinstance(self.groups, GroupFilter) else None


class WelcomeStep(_Content):
    after: str = Field(description="delay after the add: 0m, 30m, 1d …")
    at: str | None = Field(None, description="with a delay in days: the time of day to send")
    attachments: Attachments = []

    _attachments = field_validator("attachments")(classmethod(lambda cls, v: attachments_ok(v)))

    _after = field_validator("after")(classmethod(lambda cls, v: _duration_ok(v)))
    _at = field_validator("at")(classmethod(lambda cls, v: _clock_ok(v)))

    @model_validator(mode="after")
    def _content(self) -> WelcomeStep:
        _one_content(self)
        return self


class Trigger(_Strict):
    """An event that starts something: a rule's `on:` or a journey's `enter:`."""

    event: EventType
    hook: str | None = Field(None, description="only events through this hook (its id or code)")
    nth: int | None = Field(None, ge=1, description="only the contact's nth such event (1 = the first)")


class ExitCondition(_Strict):
    """Ends a journey run for a contact: an event after the entering one, or tags that come to match."""

    event: EventType | None = Field(None, description="an event of this type after the one that entered the journey")
    hook: str | None = Field(None, description="with event: only events through this hook (its id or code)")
    segment: str | None = Field(None, description="a segment id or a tag expression over the contact's effective tags")

    @model_validator(mode="after")
    def _one(self) -> ExitCondition:
        if (self.event is None) == (self.segment is None):
            raise ValueError("an exit is either {event: TYPE} or {segment: EXPR}")
        if self.hook is not None and self.event is None:
            raise ValueError("hook: goes with event:")
        return self


class Rule(_Strict):
    """What an event does to its contact's tags: `on: {event: order}`, `tag: [+已购, -潜客]`."""

    on: Trigger
    tag: list[str] = Field(min_length=1, description="'+tag' adds, '-tag' removes, in order")

    @field_validator("tag", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("tag")
    @classmethod
    def _signed(cls, value: list[str]) -> list[str]:
        for item in value:
            text = item.strip()
            if len(text) < 2 or text[0] not in "+-":
                raise ValueError(f"{item!r} needs a sign: '+{text.lstrip('+-') or 'tag'}' adds the tag, '-{text.lstrip('+-') or 'tag'}' removes it")
        return [item.strip() for item in value]

    @property
    def changes(self) -> list[tuple[bool, str]]:
        """(adds?, tag) in the order written."""
        return [(item[0] == "+", item[1:].strip()) for item in self.tag]


class JourneyStep(_Content):
    id: Slug
    after: str = Field(description="delay after the entering event: 0m, 30m, 1d …")
    at: str | None = Field(None, description="the local time of day on the day `after` lands on")
    variants: dict[str, Variant] | None = Field(None, description="A/B variants; one without template/text is a holdout")
    attachments: Attachments = []

    _after = field_validator("after")(classmethod(lambda cls, v: _duration_ok(v)))
    _at = field_validator("at")(classmethod(lambda cls, v: _clock_ok(v)))
    _attachments = field_validator("attachments")(classmethod(lambda cls, v: attachments_ok(v)))

    @model_validator(mode="after")
    def _content(self) -> JourneyStep:
        if self.variants:
            _variants_ok(self, self.variants)
        else:
            _one_content(self)
        return self


class Journey(_Strict):
    """旅程: private drafts on each contact's own clock, from an entering event until an exit."""

    id: Slug
    title: str | None = None
    enter: Trigger
    audience: str | None = Field(None, description="a segment id or tag expression, tested when each step comes due")
    exit: list[ExitCondition] = []
    persona: str | None = Field(None, description="default: the hook's persona, else the contact's account's, else the first")
    repeat: bool = Field(False, description="true: every matching event starts a new run")
    steps: list[JourneyStep] = Field(min_length=1)


class Hook(_Strict):
    id: Slug
    kind: Literal["package_card", "qr_code", "form", "live", "referral"]
    title: str | None = None
    offer: str | None = None
    code: str | None = None
    tags: list[str] = []
    persona: str | None = None
    welcome: list[WelcomeStep] = []
    exit: list[ExitCondition] = Field([], description="ends the welcome sequence for a contact (e.g. {event: order})")


class Cohort(_Strict):
    id: Slug
    start: date
    groups: list[str] | None = None


class Missed(_Strict):
    max_late: str = "2h"
    action: Literal["skip", "send"] = "skip"

    _late = field_validator("max_late")(classmethod(lambda cls, v: _duration_ok(v)))

    @property
    def max_late_delta(self) -> timedelta:
        return parse_duration(self.max_late)


class StageCaps(_Strict):
    """What an account of one 养号 stage may do a day (None: no cap)."""

    adds: int | None = Field(None, ge=0, examples=[20], description="adds accepted per day (加好友通过)")
    private: int | None = Field(None, ge=0, examples=[20], description="1v1 sends per day")
    invites: int | None = Field(None, ge=0, examples=[0], description="group invitations per day (contacts brought into its groups)")


class Nurture(_Strict):
    """养号: caps by account age. Day 1 is personas[].account_since; 初生号 days 1-7, 成长号 from day 8, 稳定号 from day 30."""

    growing_from: int = Field(8, ge=2, examples=[8], description="account day 成长号 starts (初生号 before it)")
    stable_from: int = Field(30, ge=3, examples=[30], description="account day 稳定号 starts (成长号 until then)")
    new: StageCaps = Field(StageCaps(adds=20, private=20, invites=0), description="初生号 (new) caps", examples=[{"adds": 20, "private": 20, "invites": 0}])
    growing: StageCaps = Field(StageCaps(adds=40, private=40, invites=20), description="成长号 (growing) caps", examples=[{"adds": 40, "private": 40, "invites": 20}])
    stable: StageCaps = Field(StageCaps(), description="稳定号 (stable) caps (default none beyond the other limits)", examples=[{"private": 200}])

    @model_validator(mode="after")
    def _order(self) -> Nurture:
        if self.stable_from <= self.growing_from:
            raise ValueError(f"stable_from ({self.stable_from}) must come after growing_from ({self.growing_from})")
        return self


class Limits(_Strict):
    quiet_hours: str | None = Field(None, description='"22:30-08:00": nothing is dispatched inside')
    on_quiet: Literal["defer", "skip"] = "defer"
    per_contact_per_day: int | None = Field(None, ge=1)
    private_per_account_per_day: int | None = Field(None, ge=1)
    missed: Missed = Missed()
    nurture: Nurture | None = Field(None, examples=[{"new": {"adds": 20, "private": 20, "invites": 0}}], description="养号 caps per account stage; over them 1v1 drafts carry over to the next day")
    wecom_mass_per_month: int | None = Field(
        None, ge=1, examples=[30], description="company mass sends (企业群发) a customer may receive a month, as the corp has it set; default: as many as the month has days"
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _QUIET.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a quiet-hours range; write HH:MM-HH:MM, e.g. 22:30-08:00")
        parse_hhmm(match.group(1))
        parse_hhmm(match.group(2))
        return value


_DATE_SPAN = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})\s*$")


def _span(item: date | str, write: str = "write 2027-01-01 or a span 2027-02-05..2027-02-11") -> list[date]:
    """A date, or "2027-02-05..2027-02-11" as the notice writes 2月5日至11日."""
    if isinstance(item, date):
        return [item]
    match = _DATE_SPAN.match(item)
    try:
        if match is None:
            return [date.fromisoformat(item.strip())]
        first, last = date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2))
    except ValueError:
        raise ValueError(f"{item!r} is not a date; {write}") from None
    if last < first:
        raise ValueError(f"{item!r} ends before it starts")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


DateItem = Annotated[date | str, Field(description="a date, or a span 2027-02-05..2027-02-11")]


class CalendarOverrides(_Strict):
    """The playbook's own days off and days worked, over China's calendar from the `holidays` package.

    A year the package has no State Council notice for is decided only on the dates `complete`
    names: a few days off listed for it say nothing of its other days, which the notice moves
    around the statutory holidays (so they are refused, never taken as plain weekdays)."""

    off: list[DateItem] = Field([], description="extra days off (holidays): a team day off, or a year's 放假 days the package lacks")
    work: list[DateItem] = Field([], description="days worked, weekend or not (调休上班)")
    complete: list[int | DateItem] = Field(
        [],
        description="years (2027), dates or spans the playbook gives whole, for a year the package has no notice for: "
        "there weekends and the statutory holidays, plus off, less work, are the whole calendar",
    )

    @field_validator("off", "work")
    @classmethod
    def _dates(cls, value: list[date | str]) -> list[date | str]:
        for item in value:
            _span(item)
        return value

    @field_validator("complete", mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        given = "write a year (2027), a date 2027-01-01 or a span 2027-01-01..2027-01-14"
        for item in value if isinstance(value, list) else ():
            if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 9999:
                continue
            if isinstance(item, bool) or not isinstance(item, date | str):
                raise ValueError(f"{item!r} is not a year or a date; {given}")
            _span(item, write=given)
        return value

    @property
    def complete_dates(self) -> frozenset[date]:
        return frozenset(d for item in self.complete for d in _span(f"{item:04d}-01-01..{item:04d}-12-31" if isinstance(item, int) else item))

    @property
    def off_dates(self) -> frozenset[date]:
        return frozenset(d for item in self.off for d in _span(item))

    @property
    def work_dates(self) -> frozenset[date]:
        return frozenset(d for item in self.work for d in _span(item))

    @model_validator(mode="after")
    def _apart(self) -> CalendarOverrides:
        both = sorted(self.off_dates & self.work_dates)
        if both:
            raise ValueError(f"{both[0]} is both off and work; keep it in one list")
        return self


class ValueRule(_Strict):
    talkers: int = Field(3, ge=1, description="at least this many members spoke in the group in the window (not counting ads)")
    share: float = Field(0.10, gt=0, le=1, allow_inf_nan=False, description="and they are at least this share of the members")


class DeadRule(_Strict):
    active: int = Field(0, ge=0, description="at most this many members spoke, checked in or ordered in the window")


class SpamRule(_Strict):
    share: float = Field(0.8, gt=0, le=1, allow_inf_nan=False, description="ads are at least this share of the window's group messages")
    messages: int = Field(3, ge=1, description="of at least this many messages")


class AdMark(_Strict):
    prop: str = Field("kind", description="the event prop (an imported column) that marks a group message as an ad")
    values: list[str] = Field(["ad", "广告"], min_length=1, description="its values that mean an ad")


class GroupHealth(_Strict):
    """How groups are classed each day from the events of the window before it (群健康).

    The seeds give the classes and their marks, not numbers; these defaults are where a team starts."""

    window: str = Field("7d", description="the events counted: this many whole days before the day classed")
    value: ValueRule = Field(ValueRule(), description="value 价值群: members talk to each other")
    dead: DeadRule = Field(DeadRule(), description="dead 死群: no activity (even red packets fail)")
    spam: SpamRule = Field(SpamRule(), description="spam 广告群: only ads")
    ads: AdMark = Field(AdMark(), description="which message_replied events are ads")

    @field_validator("window")
    @classmethod
    def _whole_days(cls, value: str) -> str:
        span = parse_duration(_duration_ok(value))
        if span.total_seconds() <= 0 or span % timedelta(days=1):
            raise ValueError(f"{value!r} is not a whole number of days; write 7d")
        return value

    @property
    def window_days(self) -> int:
        return parse_duration(self.window).days


class LintWord(_Strict):
    """A term the copy lint warns on, with why and the rule it comes from."""

    term: str = Field(min_length=1)
    category: str = Field("playbook", description="absolute | guarantee-education | guarantee-health | sharing, or your own")
    why: str = ""
    source: str = Field("", description="the rule: a law's article, a platform's policy")
    except_: list[str] = Field([], alias="except", description="phrases containing the term that are fine (最近 for 最)")


def _lint_word_kind(value: Any) -> str:
    """A mapping is a {term, …} word, anything else a bare term: an error then speaks of that one form."""
    return "word" if isinstance(value, dict | LintWord) else "term"


LintTerm = Annotated[
    Annotated[str, Tag("term"), Field(min_length=1)] | Annotated[LintWord, Tag("word")],
    Discriminator(_lint_word_kind),
]


class Lint(_Strict):
    """Per-playbook additions to the copy lint's word list, and phrases it lets through."""

    words: list[LintTerm] = Field([], description="more terms to warn on: a term, or {term, category, why, source, except}")
    allow: list[Annotated[str, Field(min_length=1)]] = Field([], description="phrases that are fine in this playbook's copy; a whole term here turns it off")


class WebhookOutput(_Strict):
    type: Literal["webhook"]
    format: Literal["wecom", "feishu", "dingtalk", "json"]
    url_env: EnvName = Field(description="environment variable holding the URL (secrets never go in the playbook)")
    secret_env: EnvName | None = None
    timeout: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> WebhookOutput:
        if self.secret_env and self.format not in ("feishu", "dingtalk"):
            raise ValueError(f"secret_env is only used by feishu and dingtalk webhooks, not {self.format}; keep the key inside the URL for wecom and json")
        return self

    _timeout = field_validator("timeout", mode="before")(classmethod(lambda cls, v: _timeout_ok(v)))


def _timeout_ok(value: Any) -> Any:
    """A bare number is seconds (`timeout: 5`), as in every HTTP client."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{value}s"
    return value if value is None else _duration_ok(value)


class WecomOutput(_Strict):
    """企业微信 客户联系: drafts become tasks the staff member confirms in their client; results are read back."""

    type: Literal["wecom"]
    corp_id_env: EnvName = Field("SIYU_WECOM_CORP_ID", examples=["SIYU_WECOM_CORP_ID"], description="environment variable holding the corp id (企业ID)")
    secret_env: EnvName = Field("SIYU_WECOM_SECRET", examples=["SIYU_WECOM_SECRET"], description="environment variable holding the 客户联系 secret (or a self-built app's secret with customer-contact rights)")
    token_env: EnvName = Field("SIYU_WECOM_TOKEN", examples=["SIYU_WECOM_TOKEN"], description="environment variable holding the callback Token that `siyu serve` checks signatures with")
    aes_key_env: EnvName = Field("SIYU_WECOM_AES_KEY", examples=["SIYU_WECOM_AES_KEY"], description="environment variable holding the callback EncodingAESKey (43 characters) that `siyu serve` decrypts with")
    remind_after: str = Field("2h", examples=["2h"], description="a task not confirmed this long after it was created is reminded (remind_groupmsg_send), at most 3 times in 24 hours")
    moments_tags: dict[str, str] = Field(
        {}, examples=[{"高意向": "etXXXXXXXXXX"}], description="siyu tag → WeCom corp tag id: a Moments beat whose audience names these tags is shown only to customers with them"
    )
    timeout: str | None = Field(None, examples=["10s"], description="how long one API request may take (default 10s)")
    name: str | None = Field(None, examples=["wecom"], description="the name the ledger records deliveries under")

    @field_validator("remind_after")
    @classmethod
    def _remind(cls, value: Any) -> str:
        text = _duration_ok(value)
        if parse_duration(text) <= timedelta(0):
            raise ValueError(
                f"remind_after {text} would remind a task at the first pass after it was made, before its staff member could send it; write e.g. 2h (the default), or 30m or more"
            )
        return text
    _timeout = field_validator("timeout", mode="before")(classmethod(lambda cls, v: _timeout_ok(v)))


class OutboxOutput(_Strict):
    type: Literal["outbox"]
    dir: str | None = None


class ConsoleOutput(_Strict):
    type: Literal["console"]


def _output_kind(value: Any) -> str | None:
    """Which output model to validate against, so an error speaks of that one kind only."""
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        kind = value.get("type")
        return kind if isinstance(kind, str) else None
    return getattr(value, "type", None)


OutputSpec = Annotated[
    Annotated[Literal["outbox", "console"], Tag("name")]
    | Annotated[WebhookOutput, Tag("webhook")]
    | Annotated[WecomOutput, Tag("wecom")]
    | Annotated[OutboxOutput, Tag("outbox")]
    | Annotated[ConsoleOutput, Tag("console")],
    Discriminator(
        _output_kind,
        custom_error_type="output_type",
        custom_error_message="an output is outbox, console, or a mapping whose type is webhook, wecom, outbox or console",
    ),
    Field(description="outbox | console | {type: webhook, format, url_env} | {type: wecom, corp_id_env, secret_env}"),
]


class Stage(_Strict):
    id: Slug
    label: str | None = None
    event: EventType
    nth: int = Field(1, ge=1)
    optional: bool = Field(False, description="a contact may skip it; it does not move the clock")


Rate = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class TargetOf(_Strict):
    """A target held against count(stage) / count(of): `ordered: {rate: 0.10, of: added}` is 开单率."""

    rate: Rate
    of: str = Field(description="the stage whose count is the base")


class Funnel(_Strict):
    stages: list[Stage] = Field(min_length=1)
    targets: dict[str, Rate | TargetOf] = {}
    window: str | None = "30d"

    _window = field_validator("window")(classmethod(lambda cls, v: v if v is None else _duration_ok(v)))

    @property
    def window_delta(self) -> timedelta | None:
        return parse_duration(self.window) if self.window else None

    def target(self, stage_id: str) -> tuple[float, str | None] | None:
        """(rate, base stage) of a stage's target; base None means the step rate."""
        found = self.targets.get(stage_id)
        if found is None:
            return None
        if isinstance(found, TargetOf):
            return found.rate, found.of
        return float(found), None

    @model_validator(mode="after")
    def _first_required(self) -> Funnel:
        if self.stages[0].optional:
            raise ValueError("the first stage is where contacts enter; it cannot be optional")
        return self


class Playbook(_Strict):
    """A campaign: who speaks, what is said where and when, guardrails, and the funnel it is held to."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="siyu playbook",
        json_schema_extra={"$id": "https://siyu.dev/schema/playbook-1.json"},
    )

    siyu: Literal[1] = Field(description="format version")
    id: Slug = Field(description="keys the ledger: renaming starts a new campaign")
    title: str
    timezone: str = "Asia/Shanghai"
    start: date
    days: int = Field(ge=1, le=3660)
    vars: dict[str, Any] = {}
    personas: list[Persona] = Field(min_length=1)
    products: list[Product] = []
    phases: list[Phase] = []
    segments: dict[Annotated[str, AfterValidator(_segment_id)], Annotated[str, AfterValidator(_expr_ok)]] = {}
    groups: list[Group] = []
    beats: list[Beat] = []
    hooks: list[Hook] = []
    rules: list[Rule] = Field([], description="what events do to contacts' tags (标签)")
    journeys: list[Journey] = Field([], description="旅程: private sequences on each contact's own clock")
    cohorts: list[Cohort] = []
    limits: Limits = Limits()
    calendar: CalendarOverrides = Field(CalendarOverrides(), description="days off and days worked over China's holiday calendar (调休)")
    lint: Lint = Field(Lint(), description="copy lint: extra words to warn on, and phrases to allow")
    group_health: GroupHealth = Field(GroupHealth(), description="群健康: how groups are classed value / chicken_rib / dead / spam each day")
    outputs: list[OutputSpec] = ["outbox"]
    funnel: Funnel | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from siyu_cli._time import zone

        try:
            zone(value)
        except Exception:
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

