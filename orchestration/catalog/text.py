"""Text tools of the catalog: each uses the configured language model when there is one
and a deterministic local method otherwise, and reports which in ``method``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestration.catalog import textops
from orchestration.catalog.sample_data import DICTIONARY, GLOSSARY
from orchestration.patterns.llm import TextModel, TextResult
from orchestration.patterns.tools import ToolRegistry

TICKET_LABELS = {
    "billing": ["invoice", "refund", "charge", "billing", "payment", "price"],
    "technical": ["error", "crash", "bug", "down", "broken", "outage", "slow", "fails"],
    "account": ["password", "login", "account", "reset", "locked"],
    "sales": ["demo", "pricing", "quote", "upgrade", "buy"],
}
URGENT = ["outage", "down", "urgent", "immediately", "data loss", "security", "breach"]


class TextIn(BaseModel):
    text: str = Field(max_length=200_000)
    title: str = ""
    max_sentences: int = Field(3, ge=1, le=50)


class MergeIn(BaseModel):
    branches: dict[str, dict[str, Any]]
    max_sentences: int = Field(3, ge=1, le=50)


class TextOut(BaseModel):
    text: str
    method: str
    note: str = ""
    usage: dict[str, int] | None = None  # the model's token counts (the step's cost)


class ListOut(BaseModel):
    items: list[str]
    method: str = "local"


class DraftIn(BaseModel):
    title: str
    points: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class ClassifyOut(BaseModel):
    label: str
    confidence: float
    urgent: bool
    method: str


class TranslateIn(BaseModel):
    text: str
    lang: str = Field(pattern="^(de|fr)$")


class TermCheckIn(BaseModel):
    source: str
    text: str
    lang: str = Field(pattern="^(de|fr)$")


class TermCheckOut(BaseModel):
    ok: bool
    missing: list[str]
    checked: int


class ReviewOut(BaseModel):
    ok: bool
    issues: list[str]
    method: str


def _out(r: TextResult) -> TextOut:
    return TextOut(text=r.text, method=r.method, note=r.note, usage=r.usage)


def register(reg: ToolRegistry, model: TextModel) -> None:
    _writing_tools(reg, model)
    _checking_tools(reg)
    _language_tools(reg, model)


def _writing_tools(reg: ToolRegistry, model: TextModel) -> None:
    """Summaries, outlines and drafts: the model when there is one, else local methods."""
    @reg.tool("text.summarize", pool="llm", description="Summarize text")
    async def summarize(inp: TextIn) -> TextOut:
        return _out(await model.run("summarize", inp.text,
                                    lambda: textops.summarize(inp.text, inp.max_sentences)))

    @reg.tool("text.chunk", description="Split text into chunks of about 60 words")
    def chunk(inp: TextIn) -> ListOut:
        return ListOut(items=textops.chunk(inp.text))

    @reg.tool("text.merge", pool="llm", description="Merge the branches' summaries")
    async def merge(inp: MergeIn) -> TextOut:
        parts = [str(b.get("output", {}).get("text", "")) for _, b in sorted(
            inp.branches.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
            if b.get("ok")]
        text = " ".join(p for p in parts if p)
        return _out(await model.run("merge", text,
                                    lambda: textops.summarize(text, inp.max_sentences),
                                    "merge these partial summaries into one summary"))

    @reg.tool("text.outline", pool="llm", description="Outline a document")
    async def outline(inp: TextIn) -> ListOut:
        sections = ["Background on {topic}", "Goals", "Approach", "Risks", "Next steps"]
        r = await model.run("outline", inp.title or inp.text,
                            lambda: "\n".join(textops.outline(inp.title or inp.text, sections)),
                            "outline a document about this topic as numbered lines")
        return ListOut(items=[x for x in r.text.splitlines() if x.strip()], method=r.method)

    @reg.tool("text.draft", pool="llm", description="Draft a document from titled points")
    async def draft(inp: DraftIn) -> TextOut:
        points = {k: "" if v is None else str(v) for k, v in inp.points.items()}
        prompt = f"Title: {inp.title}\n" + "\n".join(f"{k}: {v}" for k, v in points.items())
        return _out(await model.run("draft", prompt,
                                    lambda: textops.draft(inp.title, points),
                                    "draft a short document in Markdown from these points"))


def _checking_tools(reg: ToolRegistry) -> None:
    """Rule-based checks of drafts and summaries (never a model)."""
    @reg.tool("text.review", description="Check a draft for gaps and placeholders")
    def review(inp: TextIn) -> ReviewOut:
        issues = []
        if len(inp.text.split()) < 20:
            issues.append("draft is shorter than 20 words")
        if "TODO" in inp.text or "TBD" in inp.text:
            issues.append("draft has placeholders")
        return ReviewOut(ok=not issues, issues=issues, method="local:rules")

    @reg.tool("text.finalize", description="Finalize a reviewed draft")
    def finalize(inp: TextIn) -> TextOut:
        return TextOut(text=inp.text.strip() + "\n\n-- final --\n", method="local:template")

    @reg.tool("text.validate_summary", description="Check a summary is shorter and grounded")
    def validate_summary(inp: TextIn) -> ReviewOut:
        source_words = textops.words(inp.title)
        source = set(source_words)
        summary = textops.words(inp.text)
        unknown = sorted({w for w in summary if w not in source})
        issues = [f"words not in the source: {unknown[:5]}"] if len(unknown) > 3 else []
        if source and len(summary) > len(source_words):
            issues.append("summary is longer than its source")
        return ReviewOut(ok=not issues, issues=issues, method="local:rules")


def _language_tools(reg: ToolRegistry, model: TextModel) -> None:
    """Classification, requirements, translation and its terminology check."""
    @reg.tool("text.classify", pool="llm", description="Classify a ticket and flag urgency")
    async def classify(inp: TextIn) -> ClassifyOut:
        label, conf = textops.classify(inp.text, TICKET_LABELS, "general")
        r = await model.run("classify", inp.text, lambda: label,
                            f"classify into one of {sorted(TICKET_LABELS)} or general")
        if r.method.startswith("llm:"):
            label = r.text.strip().lower() if r.text.strip().lower() in TICKET_LABELS else label
        urgent = any(u in inp.text.lower() for u in URGENT)
        return ClassifyOut(label=label, confidence=conf, urgent=urgent, method=r.method)

    @reg.tool("text.requirements", description="Extract requirement sentences")
    def requirements(inp: TextIn) -> ListOut:
        return ListOut(items=textops.requirements(inp.text), method="local:rules")

    @reg.tool("text.translate", pool="llm", description="Translate text to de or fr")
    async def translate(inp: TranslateIn) -> TextOut:
        glossary = GLOSSARY[inp.lang]
        dictionary = {**DICTIONARY[inp.lang]}

        def local() -> str:
            text = inp.text
            for term, target in sorted(glossary.items(), key=lambda t: -len(t[0])):
                text = text.replace(term, target).replace(term.capitalize(), target)
            return textops.translate(text, dictionary)

        return _out(await model.run("translate", inp.text, local,
                                    f"translate to {inp.lang}, using the glossary {glossary}"))

    @reg.tool("terminology.check", description="Check required glossary terms in a translation")
    def terminology(inp: TermCheckIn) -> TermCheckOut:
        source, text = inp.source.lower(), inp.text.lower()
        wanted = {t: v for t, v in GLOSSARY[inp.lang].items() if t in source}
        missing = sorted(f"{t} -> {v}" for t, v in wanted.items() if v.lower() not in text)
        return TermCheckOut(ok=not missing, missing=missing, checked=len(wanted))
