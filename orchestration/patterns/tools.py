"""The tool registry: typed tools (pydantic input and output) with declared permissions.

A tool is a function from one pydantic model to another, sync or async. The registry
validates the input before the call and the output after it, so a tool that returns
garbage fails with ``ToolOutputInvalid`` (permanent: retrying garbage gives garbage)
instead of passing it on. A workflow may only use tools whose permissions it was granted;
this is checked when the workflow is loaded and again on every call.

Errors travel with a ``transient`` flag: only transient ones are retried. A tool marks an
error transient by raising ``TransientToolError`` or one of its declared ``transient``
exception types; a time-out is transient.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError

from orchestration.errors import OrchestrationError
from orchestration.patterns.bulkhead import Bulkhead

ToolFn = Callable[[Any], Any]


class ToolError(OrchestrationError):
    transient = False

    def __init__(self, tool: str, message: str, transient: bool | None = None) -> None:
        super().__init__(f"tool {tool!r}: {message}")
        self.tool = tool
        if transient is not None:
            self.transient = transient


class TransientToolError(ToolError):
    """Raised by a tool for a failure worth retrying (a 503, a dropped connection)."""

    transient = True

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(tool, message, True)


class ToolTimeout(ToolError):
    transient = True


class ToolInputInvalid(ToolError):
    pass


class ToolOutputInvalid(ToolError):
    pass


class PermissionDenied(ToolError):
    pass


class UnknownTool(ToolError):
    pass


@dataclass(frozen=True)
class Tool:
    name: str
    fn: ToolFn
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    permissions: frozenset[str] = frozenset()
    description: str = ""
    timeout: float | None = 30.0
    transient: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    idempotent: bool = True
    pool: str | None = None  # bulkhead for this tool's calls; blocking tools need one
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.fn))

    @property
    def reads_only(self) -> bool:
        """Declared to read and not act (every permission ``*.read``): such a tool may run
        for a turn not yet confirmed (``orchestration.patterns.hold``)."""
        return bool(self.permissions) and all(p.endswith(".read") for p in self.permissions)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "permissions": sorted(self.permissions),
            "input": self.input_model.model_json_schema(),
            "output": self.output_model.model_json_schema(),
        }


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


class ToolRegistry:
    def __init__(self, bulkheads: Mapping[str, Bulkhead] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        self.bulkheads: dict[str, Bulkhead] = dict(bulkheads or {})

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise OrchestrationError(f"tool {tool.name!r} is registered twice")
        if tool.pool is not None and tool.pool not in self.bulkheads:
            self.bulkheads[tool.pool] = Bulkhead(tool.pool, max_concurrent=4, max_queue=64)
        self._tools[tool.name] = tool
        return tool

    def tool(
        self, name: str, *, permissions: Iterable[str] = (), description: str = "",
        timeout: float | None = 30.0, pool: str | None = None, idempotent: bool = True,
        transient: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError),
    ) -> Callable[[ToolFn], ToolFn]:
        """Register ``fn(inp: InModel) -> OutModel``; the models come from its annotations."""

        def decorate(fn: ToolFn) -> ToolFn:
            hints = get_type_hints(fn)
            params = [p for p in inspect.signature(fn).parameters if p != "return"]
            in_model, out_model = hints.get(params[0]) if params else None, hints.get("return")
            if not (isinstance(in_model, type) and issubclass(in_model, BaseModel)):
                raise OrchestrationError(f"tool {name!r}: its argument must be a pydantic model")
            if not (isinstance(out_model, type) and issubclass(out_model, BaseModel)):
                raise OrchestrationError(f"tool {name!r}: it must return a pydantic model")
            self.register(Tool(name, fn, in_model, out_model, frozenset(permissions),
                               description or (fn.__doc__ or "").strip(), timeout,
                               transient, idempotent, pool))
            return fn

        return decorate

    def register_fn(
        self, name: str, fn: ToolFn, input_model: type[BaseModel],
        output_model: type[BaseModel], description: str = "",
        permissions: Iterable[str] = (), timeout: float | None = 30.0,
    ) -> Tool:
        """Register a function whose models are given rather than read from annotations."""
        return self.register(Tool(name, fn, input_model, output_model, frozenset(permissions),
                                  description, timeout))

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(name, "no such tool is registered") from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    def describe(self) -> list[dict[str, Any]]:
        return [self._tools[n].describe() for n in self.names()]

    async def invoke(
        self, name: str, raw: Mapping[str, Any], granted: Iterable[str] | None = None,
        time_box: float | None = None,
    ) -> dict[str, Any]:
        """Validate, check permissions, call (time-boxed), validate the output."""
        tool = self.get(name)
        if granted is not None:
            missing = tool.permissions - set(granted)
            if missing:
                raise PermissionDenied(name, f"needs permissions not granted: {sorted(missing)}")
        try:
            inp = tool.input_model.model_validate(raw)
        except ValidationError as exc:
            raise ToolInputInvalid(name, f"input fails its schema: {_errors(exc)}") from None
        limit = time_box if time_box is not None else tool.timeout
        box = asyncio.timeout(limit)
        try:
            async with box:
                result = await self._call(tool, inp)
        except ToolError:
            raise
        except OrchestrationError:
            raise  # BulkheadFull and friends keep their own type
        except TimeoutError as exc:
            if box.expired():
                raise ToolTimeout(name, f"no answer within {limit:g} s") from None
            raise ToolError(name, f"TimeoutError: {exc}", transient=True) from exc
        except tool.transient as exc:
            raise ToolError(name, f"{type(exc).__name__}: {exc}", transient=True) from exc
        except Exception as exc:
            raise ToolError(name, f"failed: {type(exc).__name__}: {exc}") from exc
        return self._check_output(tool, result)

    async def _call(self, tool: Tool, inp: BaseModel) -> Any:
        pool = self.bulkheads.get(tool.pool) if tool.pool else None
        if tool.is_async:
            coro: Callable[[], Awaitable[Any]] = lambda: tool.fn(inp)  # noqa: E731
            return await (pool.run(coro) if pool else coro())
        if pool is not None:
            return await pool.run_in_thread(tool.fn, inp)
        return tool.fn(inp)

    def _check_output(self, tool: Tool, result: Any) -> dict[str, Any]:
        try:
            if isinstance(result, tool.output_model):
                return result.model_dump(mode="json")
            if isinstance(result, BaseModel):
                result = result.model_dump()
            return tool.output_model.model_validate(result).model_dump(mode="json")
        except ValidationError as exc:
            raise ToolOutputInvalid(
                tool.name, f"returned output that fails its schema: {_errors(exc)}"
            ) from None
