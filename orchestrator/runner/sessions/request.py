"""What starting a session asks for, as it travels to the keeper (JSON on a pipe).

Owns: ``StartRequest`` and its JSON form. Does not own: what the keeper does with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.errors import CodexBoxError, UsageError
from orchestrator.core.options import LaunchOptions

MAX_DURATION_S = 365 * 86400.0  # a later deadline overflows the clock arithmetic


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRequest:
    environ: dict[str, str]
    cwd: str
    profile: str | None = None
    workspace: str | None = None
    backend: str | None = None
    options: LaunchOptions = field(default_factory=LaunchOptions)
    trust_opt_in: bool = False
    policy_mode: str | None = None
    name: str | None = None
    idle_timeout_s: float = 30 * 60.0
    max_lifetime_s: float = 8 * 3600.0

    def __post_init__(self) -> None:
        for what, value in (
            ("idle timeout", self.idle_timeout_s),
            ("max lifetime", self.max_lifetime_s),
        ):
            # Not NaN (it would switch the check off), not negative, not past a year.
            if not isinstance(value, int | float) or not 0 < value <= MAX_DURATION_S:
                raise UsageError(
                    f"a session's {what} must be between 0 and 365 days (got {value!r})",
                    hint="e.g. 1800 seconds",
                )

    def to_json(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["options"] = {f: getattr(self.options, f) for f in self.options.__dataclass_fields__}
        return data

    @classmethod
    def from_json(cls, data: Any) -> StartRequest:
        """Raises CodexBoxError for anything ``to_json`` does not make."""
        if not isinstance(data, dict) or not isinstance(data.get("options", {}), dict):
            raise _malformed()
        data = dict(data)
        options = dict(data.pop("options", {}))
        # JSON lists back to the tuples they were.
        for key in ("env_names", "hide", "container_env", "labels", "tmpfs"):
            values = options.get(key) or ()
            if not isinstance(values, list | tuple):
                raise _malformed()
            options[key] = tuple(values)
        try:
            return cls(**data, options=LaunchOptions(**options))
        except TypeError as exc:  # a field unknown or missing: not a request of ours
            raise _malformed() from exc


def _malformed() -> CodexBoxError:
    return CodexBoxError(
        "a session's start request is malformed (not one this codex-box wrote)",
        hint="start the session with this codex-box's `codex-box session start`",
    )


def parse_duration(flag: str, text: str) -> float:
    """``90``, ``30m``, ``8h``, ``2d`` in seconds (``UsageError`` naming ``flag``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, IndexError):
        value = -1.0
    # NaN would disable the check it feeds, and a deadline past a year overflows.
    if not 0 < value <= MAX_DURATION_S:
        raise UsageError(
            f"{flag} {text!r} is not a duration (at most 365d)", hint="e.g. 90, 30m, 8h, 2d"
        )
    return value
