"""The chat completion request `phitune serve` accepts: OpenAI's shape, as pydantic models.

Validation is strict (no "1" for 1, no `true` for 1). A value OpenAI would reject is a 400 naming the
parameter; a valid OpenAI parameter this server cannot honour (tools, n > 1, logprobs, penalties,
JSON response formats) is a 422 `unsupported_parameter` rather than being silently ignored.
Unknown keys are ignored, as OpenAI-compatible servers do.

Defaults follow OpenAI's API: `temperature` 1 and `top_p` 1 (sampling; send `temperature: 0` for the
greedy answer `phitune generate` gives), `max_tokens` 256 capped by `phitune serve --max-tokens`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phitune.serve.errors import ApiError

DEFAULT_TEMPERATURE = 1.0  # OpenAI's default: sampled answers
DEFAULT_TOP_P = 1.0
DEFAULT_MAX_TOKENS = 256
MAX_STOP_STRINGS = 4


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    # "developer" is what newer OpenAI clients send in place of "system".
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_chat(self) -> dict:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    # Valid OpenAI parameters this server cannot honour: refused (422) unless left at OpenAI's default.
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def chat_messages(self) -> list[dict]:
        return [m.as_chat() for m in self.messages]

    def max_new_tokens(self, cap: int) -> int:
        asked = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        if asked is None:
            return min(DEFAULT_MAX_TOKENS, cap)
        if asked > cap:
            param = "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"
            raise ApiError(400, f"{param} is {asked}; this server allows at most {cap} (phitune serve --max-tokens)",
                           param=param, code="invalid_value")
        return asked

    def sampling(self) -> tuple[float, float]:
        temperature = DEFAULT_TEMPERATURE if self.temperature is None else self.temperature
        return temperature, DEFAULT_TOP_P if self.top_p is None else self.top_p

    def stop_strings(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP_STRINGS or not all(stops):
            raise ApiError(400, f"stop must be a non-empty string or up to {MAX_STOP_STRINGS} of them", param="stop",
                           code="invalid_value")
        return stops

    def refuse_unsupported(self) -> None:
        unsupported = {
            "n": self.n not in (None, 1),
            "logprobs": bool(self.logprobs) or bool(self.top_logprobs),
            "presence_penalty": self.presence_penalty not in (None, 0),
            "frequency_penalty": self.frequency_penalty not in (None, 0),
            "logit_bias": bool(self.logit_bias),
            "tools": bool(self.tools) or bool(self.functions),
            "response_format": (self.response_format or {}).get("type", "text") != "text",
        }
        for param, asked in unsupported.items():
            if asked:
                raise ApiError(422, f"{param} is not supported by phitune serve (leave it out or at its default)",
                               param=param, code="unsupported_parameter")


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Bytes -> ChatRequest, or an ApiError(400) naming the first bad parameter. JSON nested deeper than
    the parser's limit is a 400, not a crash."""
    try:
        return ChatRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("json_invalid", "json_type", "model_type", "model_attributes_type") and not first["loc"]:
            detail = f"not valid JSON ({first['msg']})" if first["type"] == "json_invalid" else "not a JSON object"
            raise ApiError(400, f"the request body is {detail}", code="invalid_json") from None
        param = param_name(first["loc"])
        message = "must be a string or a list of text parts" if param.endswith(".content") else first["msg"]
        raise ApiError(400, f"{param}: {message}", param=param, code="invalid_value") from None


_FIELDS = {name for model in (ChatRequest, Message, TextPart, StreamOptions) for name in model.model_fields}


def param_name(loc: tuple) -> str:
    """("messages", 0, "role") -> "messages[0].role"; union-member tags pydantic adds are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _FIELDS:
            out += f".{part}" if out else part
        else:
            break
    return out or "body"
