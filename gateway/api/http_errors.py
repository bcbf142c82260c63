"""The 422 answer to a request body that fails validation, safe for any JSON input.

Python's json reads ``NaN`` and ``Infinity``; FastAPI's own handler echoes each error's
``input`` back, and encoding a non-finite float fails, so ``{"caller": NaN}`` on
``POST /api/tokens`` got a 500 and a traceback in the log (found by
tests/security/test_fuzz_http.py). This answer keeps FastAPI's shape but names only
where and what (``type``, ``loc``, ``msg``): the input is the client's own, and echoing
it back could copy a secret into a proxy's logs.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"type": str(e.get("type")), "loc": [str(part) for part in e.get("loc", ())],
               "msg": str(e.get("msg"))} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)
