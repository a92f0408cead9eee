"""The request bodies of the HTTP API (pydantic, strict: unknown fields and wrong types are a client's
mistake, answered 422 with the field named).  Imported by ``app.create_app`` once FastAPI is known to be
installed (the ``serve`` extra)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 200_000  # characters of one text field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

class SuggestIn(Strict):
    text: str = Field(max_length=MAX_TEXT, description="the text typed so far; a last word not followed by a "
                      "space is completed")
    model: str | None = Field(None, description="a served model's name (default: the first)")
    k: int = Field(5, ge=1, le=100, description="how many suggestions")
    allow_unk: bool = False

class ScoreIn(Strict):
    lines: list[str] | None = Field(None, max_length=10_000)
    text: str | None = Field(None, max_length=MAX_TEXT)
    model: str | None = None
    per: str = Field("line", pattern="^(line|token|corpus)$")
    mode: str = Field("sentence", pattern="^(sentence|stream)$")

class GenerateIn(Strict):
    prompt: str = Field("", max_length=MAX_TEXT)
    model: str | None = None
    max_tokens: int = Field(30, ge=1, le=500)
    num: int = Field(1, ge=1, le=20)
    temperature: float = Field(1.0, ge=1e-3, le=1e3)
    top_k: int | None = Field(None, ge=1, le=100_000)
    top_p: float | None = Field(None, gt=0, le=1)
    greedy: bool = False
    seed: int | None = None
    beam: int | None = Field(None, ge=1, le=64, description="beam search with this many hypotheses (instead of "
                             "sampling); num of them are returned, best first")
    length_penalty: float = Field(1.0, ge=-10, le=10, description="beam: rank by log-prob / length^this")
    ban: list[str] = Field(default_factory=list, max_length=1000, description="beam: words never to produce")
    prefix: str = Field("", max_length=MAX_TEXT, description="beam: text the output must begin with")

class EvaluateIn(Strict):
    text: str = Field(max_length=MAX_TEXT)
    model: str | None = None
    mode: str = Field("stream", pattern="^(sentence|stream)$")
